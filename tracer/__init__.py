"""proctrace: a live tracer of the Linux process lifecycle built on eBPF."""

__version__ = "0.1.0"

# Set to 1 to decode and render in Python only, not with the compiled modules
# (kernel/_fastwire.c, formats/_faststream.c, model/_fastredact.c): to compare,
# or to rule them out.
PURE_PYTHON_ENV = "PROCTRACE_PURE_PYTHON"


def pure_python() -> bool:
    """Whether PURE_PYTHON_ENV asks for Python only."""
    import os

    return os.environ.get(PURE_PYTHON_ENV) == "1"
