"""The one base of every failure of the kernel side that the user is told of.

A module of its own, importing nothing, so that the command line can catch
these without importing the kernel side: `--help`, `--version` and `-r` never
load what only live tracing needs.
"""

from __future__ import annotations


class KernelError(Exception):
    """Live tracing cannot go on here: the message says why and, where it can,
    how to fix it (the command line prints it and exits 1)."""
