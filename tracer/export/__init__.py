"""Exports to the systems an operator already runs: Prometheus metrics
(metrics.py) and OpenTelemetry logs over OTLP/HTTP (otlp.py). Each is a Sink of
the session's pipeline, built on the model and the formats only; their
third-party packages are imported when the option is given, never otherwise."""
