"""Text for people: escaping, shell quoting, durations, cut markers and styles.

Every output that shows text to a person gets it from here, so that a string a
process chose (comm, filename, argv) or anything else from outside looks the
same wherever it appears and can never act on the terminal: terminal escapes,
carriage returns, bidi controls and bytes that are not UTF-8 are shown as
visible escapes. There is one escaping notation, used in two forms:

* the shell form (escape_bytes, escape_text, shell_quote), for what processes
  chose, in the event stream, the views and the Chrome trace: bash's $'...'
  notation, \\n \\t \\r \\\\, \\xNN for a byte (a control character below 0x80 or
  a byte that is not UTF-8), \\uNNNN or \\UNNNNNNNN for a non-printable code
  point (C1 controls, bidi and other format characters, separators other than
  space), so that a quoted argument pastes back into bash as the same bytes;
* the message form (safe), for outside text in proctrace's own messages on
  stderr (file names, error texts).

This module imports nothing heavy at load time (rich only when the colour codes
are first asked for): the command line's error paths use `safe`.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------
# Escaping

# The shell form names the characters bash's $'...' names, and escapes the
# backslash itself so that every escape reads back unambiguously.
_SHELL_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape_char(c: str, shell: bool) -> str:
    """`c` as shown: itself when printable, else an escape by its number.

    The two forms differ where their readers do. In bash's $'...' a \\xNN is a
    byte, so the shell form writes only ASCII code points that way, and writes
    surrogateescape's stand-in for an undecodable byte as that byte; the message
    form writes every code point below 0x100 as \\xNN and a lone surrogate as
    itself (\\udcNN), as it always has."""
    if shell:
        named = _SHELL_NAMED.get(c)
        if named is not None:
            return named
    if c.isprintable():
        return c
    code = ord(c)
    if shell and 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code < (0x80 if shell else 0x100):
        return f"\\x{code:02x}"
    return _escape_code_point(code)


def _escape_code_point(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


_ASCII_ESCAPES = [_escape_char(chr(i), shell=True) for i in range(128)]
# Runs of anything but printable ASCII other than the backslash.
_UNPLAIN_RUN = re.compile(r"[^\x20-\x5b\x5d-\x7e]+")


def _escape_run(match: re.Match[str]) -> str:
    run = match.group()
    if run.isprintable() and "\\" not in run:
        return run
    return "".join([_escape_char(c, shell=True) for c in run])


def escape_bytes(raw: bytes) -> str:
    """`raw` as text that is safe to print: every character that str.isprintable()
    rejects (controls, format and bidi characters, separators other than space,
    unassigned code points) and the backslash are escaped, as are bytes that are
    not UTF-8. The result contains no control character of any kind."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and "\\" not in text:
            return text
        return text.translate(_ASCII_ESCAPES)
    # an undecodable byte becomes a lone surrogate, which is not printable
    return escape_text(raw.decode("utf-8", "surrogateescape"))


def escape_text(text: str) -> str:
    """escape_bytes for text already decoded (with surrogateescape, if at all)."""
    if text.isprintable() and "\\" not in text:
        return text
    if text.isascii():
        return text.translate(_ASCII_ESCAPES)
    return _UNPLAIN_RUN.sub(_escape_run, text)


def safe(text: str) -> str:
    """`text` for proctrace's own messages, with every character that is not
    printable (controls, format and bidi characters, line separators, lone
    surrogates) written as an escape."""
    if text.isprintable():
        return text
    return "".join([_escape_char(c, shell=False) for c in text])


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def bmp_only(shown: str) -> str:
    """Escaped (or quoted) text with the printable characters beyond the BMP
    escaped too, in the same \\UNNNNNNNN notation: for JSON read by viewers that
    reject the surrogate pairs JSON would need for them (the Chrome trace)."""
    if shown.isascii():
        return shown
    return _ASTRAL.sub(lambda m: _escape_code_point(ord(m.group())), shown)


def comm_text(comm: bytes) -> str:
    """A comm, escaped; "?" when unknown (a process only ever seen being reaped)."""
    return escape_bytes(comm) if comm else "?"


# ---------------------------------------------------------------------------
# Shell quoting

_SHELL_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII).fullmatch


def _quote_escaped(text: str) -> str:
    """Shell-quote text made by escape_bytes. Text with escapes gets bash's
    $'...' quoting, whose escapes are exactly ours, so a line can be pasted."""
    if not text:
        return "''"
    if _SHELL_SAFE(text):
        return text
    if "\\" in text:
        return "$'" + text.replace("'", "\\'") + "'"
    return "'" + text.replace("'", "'\"'\"'") + "'"


def shell_quote(raw: bytes) -> str:
    """`raw` escaped and quoted the way a shell would need it (shlex.quote for bytes)."""
    return _quote_escaped(escape_bytes(raw))


def _utf8_boundary(raw: bytes, n: int) -> int:
    """The largest cut <= n that does not split a UTF-8 sequence."""
    if n >= len(raw):
        return len(raw)
    cut = n
    for _ in range(3):  # a UTF-8 sequence has at most 3 continuation bytes
        if cut == 0 or (raw[cut] & 0xC0) != 0x80:
            break
        cut -= 1
    return n if (raw[cut] & 0xC0) == 0x80 else cut  # no lead byte: not UTF-8 anyway


def quote_prefix(raw: bytes, budget: int) -> tuple[str, int]:
    """The quoted form of the longest start of `raw` that fits `budget` characters,
    and how many bytes of `raw` it shows."""
    n = min(len(raw), budget)
    while True:
        n = _utf8_boundary(raw, n)
        quoted = _quote_escaped(escape_bytes(raw[:n]))
        if len(quoted) <= budget or n == 0:
            return quoted, n
        # an escape is at most 10 characters a byte; shrink in proportion, by at least one
        n = min(n - 1, n * budget // len(quoted))


# ---------------------------------------------------------------------------
# Cuts

DETAIL_MAX = 4096
"""Characters of an exec's filename and arguments shown before the rest is cut."""

TRUNCATED = "…(truncated)"
"""The kernel side cut the value (the event carries only its start)."""


def cut(text: str, limit: int, *, whole_escapes: bool = False) -> str:
    """`text` cut to `limit` characters, ending in "…" when something was cut.

    `whole_escapes` also drops backslashes the cut would leave at the end, where
    they would read as an escape of the "…": the Chrome trace's names ask for it;
    the views' lines, which always kept them, do not."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    return (kept.rstrip("\\") if whole_escapes else kept) + "…"


def cut_marker(arg: bytes, shown: int, rest: list[bytes]) -> str:
    """What an exec line leaves out when it cuts `arg` after `shown` bytes:
    bytes of argument text, and the whole arguments `rest` after it."""
    hidden = len(arg) - shown + sum(len(a) for a in rest)
    if rest:
        return f"…(+{hidden} bytes, {len(rest)} more args)"
    return f"…(+{hidden} bytes)"


# ---------------------------------------------------------------------------
# Durations


def format_kb(kb: int) -> str:
    """A size for people, from KiB: 812 KiB, 129.0 MiB, 2.4 GiB."""
    if kb < 1024:
        return f"{max(kb, 0)} KiB"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.1f} MiB"
    return f"{kb / (1024 * 1024):.1f} GiB"


def format_bytes(n: int) -> str:
    """format_kb for a count of bytes: 0 B, 512 B, 8 KiB, ..."""
    return f"{n} B" if n < 1024 else format_kb(n // 1024)


def format_duration(ns: int) -> str:
    """A lifetime for people: 850ns, 12.3µs, 1.2ms, 3.40s, 2m05s, 4h07m, 3d02h."""
    if ns < 1_000:
        return f"{max(ns, 0)}ns"
    if ns < 999_950:
        tenths = (ns + 50) // 100
        return f"{tenths // 10}.{tenths % 10}µs"
    if ns < 999_950_000:
        tenths = (ns + 50_000) // 100_000
        return f"{tenths // 10}.{tenths % 10}ms"
    if ns < 59_995_000_000:
        hundredths = (ns + 5_000_000) // 10_000_000
        return f"{hundredths // 100}.{hundredths % 100:02d}s"
    seconds = (ns + 500_000_000) // 1_000_000_000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    minutes = (ns + 30_000_000_000) // 60_000_000_000
    if minutes < 24 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    hours = (ns + 1_800_000_000_000) // 3_600_000_000_000
    return f"{hours // 24}d{hours % 24:02d}h"


# ---------------------------------------------------------------------------
# Styles

# role -> rich style; every ANSI sequence proctrace ever emits comes from here.
STYLES: dict[str, str] = {
    "time": "dim",
    "comm": "bold",
    "header": "bold",
    "fork": "blue",
    "exec": "cyan",
    "exec_failed": "red",
    "exit_ok": "green",
    "exit_bad": "red",
    "signal_generate": "yellow",
    "signal_deliver": "magenta",
    "reap": "dim",
    "privilege": "bold yellow",  # a gain of privilege: a set-user-ID exec, file capabilities
    "other": "",
}


def _ansi(style: str) -> tuple[str, str]:
    """The escape sequences that switch `style` on and off, computed once by rich."""
    from rich.color import ColorSystem
    from rich.style import Style

    rendered = Style.parse(style).render("\0", color_system=ColorSystem.STANDARD)
    on, _, off = rendered.partition("\0")
    return on, off


def ansi_codes() -> dict[str, tuple[str, str]]:
    """role -> (on, off) ANSI sequences, as the colour mode uses them."""
    return {role: _ansi(style) if style else ("", "") for role, style in STYLES.items()}


def cell_width(text: str) -> int:
    """How many terminal cells `text` takes (wide characters take two)."""
    from rich.cells import cell_len

    return len(text) if text.isascii() else cell_len(text)


def crop_cells(text: str, cells: int) -> str:
    """`text` cut to `cells` terminal cells, ending in "…" when something was cut."""
    if cell_width(text) <= cells:
        return text
    if cells <= 1:
        return "…" if cells == 1 else ""
    if text.isascii():
        return text[: cells - 1] + "…"
    from rich.cells import set_cell_size

    return set_cell_size(text, cells - 1) + "…"
