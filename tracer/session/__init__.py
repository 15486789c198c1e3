"""The session: a source of events (live or a recording), the sinks they go to,
and the loop that drives one into the other."""
