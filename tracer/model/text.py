"""The one lossless mapping between the bytes a process chose (names, paths,
arguments, environment) and `str`, which every stored form uses."""

from __future__ import annotations


def as_text(raw: bytes) -> str:
    """`raw` as a str, each byte that is not UTF-8 as PEP 383's lone surrogate
    (0xNN as \\udcNN). Valid UTF-8 never decodes to a lone surrogate, so
    as_bytes gives back the exact bytes."""
    return raw.decode("utf-8", "surrogateescape")


def as_bytes(value: str) -> bytes:
    """The inverse of as_text; a TypeError for anything but a str (values read
    back from files anyone may have written)."""
    if type(value) is not str:
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return value.encode("utf-8", "surrogateescape")
