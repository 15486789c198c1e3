"""Making text from outside safe to print in proctrace's own messages.

File names, command names and anything else a process or a file chose can hold
terminal escapes, carriage returns or bidi controls. Messages on stderr show
such characters as visible escapes, so they can neither move the cursor nor
hide what the message says. (The event stream has its own, fuller escaping in
tracer/formats/stream.py; this module stays free of rich so error paths load nothing.)
"""

from __future__ import annotations


def _escape_char(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe(text: str) -> str:
    """`text` with every character that is not printable (controls, format and
    bidi characters, line separators, lone surrogates) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)
