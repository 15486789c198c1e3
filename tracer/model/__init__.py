"""The model: events, the process table rebuilt from them, filters, ordering, the
clock and the /proc snapshot. Pure Python, testable without root or bcc."""
