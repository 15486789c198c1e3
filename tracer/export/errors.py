"""The one error of the exports: an address, a URL or a package that stops
one from starting. The command line says it and exits 1, before anything is
attached to the kernel."""

from __future__ import annotations


class ExportError(Exception):
    pass
