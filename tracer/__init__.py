"""proctrace: a live tracer of the Linux process lifecycle built on eBPF."""

__version__ = "0.1.0"
