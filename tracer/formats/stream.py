"""The pretty event stream: one line per event, for people at a terminal.

This module owns how an event looks on a terminal: the columns, the colours,
the escaping of strings that processes chose (comm, filename, argv), durations,
and the status line kept at the bottom of a TTY. The JSON form is elsewhere
(tracer/formats/jsonl.py).

Two constraints shape the code:

* Speed. A fork storm produces tens of thousands of events a second, and the
  renderer runs on the same core that drains the kernel buffer. Lines are built
  with f-strings and ANSI sequences computed once from rich styles; no rich
  renderable is made per event.
* Hostile strings. Any process picks its own comm, filename and arguments. What
  we print must never reach the terminal as a control sequence, so everything
  that is not plainly printable is shown as an escape, in the notation of bash's
  $'...' quoting: \\n \\t \\r \\\\, \\xNN for a byte (a control character below 0x80 or
  a byte that is not UTF-8), \\uNNNN or \\UNNNNNNNN for a non-printable code point
  (C1 controls, bidi and other format characters, separators other than space).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any, TextIO

from proctrace.model.clock import Clock
from proctrace.model.events import (
    CLONE_THREAD,
    CLONE_VFORK,
    EVENT_KINDS,
    SIGNAL_DELIVER,
    SIGNAL_RESULTS,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    WaitStatus,
    errno_name,
    signal_name,
)
from proctrace.model.memo import remember
from rich.cells import cell_len, set_cell_size
from rich.color import ColorSystem
from rich.style import Style

DETAIL_MAX = 4096
"""Characters of an exec's filename and arguments shown before the rest is cut."""

TRUNCATED = "…(truncated)"
"""The kernel side cut the value (the event carries only its start)."""

_SIGKILL = 9

# Column widths: a pid is at most 7 digits (pid_max <= 4194304), a comm 15 bytes.
_KIND_W, _PID_W, _COMM_W = 6, 7, 15
_KIND_COLUMN = {kind: kind.ljust(_KIND_W) for kind in EVENT_KINDS}

# ---------------------------------------------------------------------------
# Escaping


def _escape_char(c: str) -> str:
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    if c == "\r":
        return "\\r"
    if c == "\\":
        return "\\\\"
    if c.isprintable():
        return c
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:
        # surrogateescape's stand-in for a byte that was not valid UTF-8
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x80:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


_ASCII_ESCAPES = [_escape_char(chr(i)) for i in range(128)]
# Runs of anything but printable ASCII other than the backslash.
_UNPLAIN_RUN = re.compile(r"[^\x20-\x5b\x5d-\x7e]+")


def _escape_run(match: re.Match[str]) -> str:
    run = match.group()
    if run.isprintable() and "\\" not in run:
        return run
    return "".join([_escape_char(c) for c in run])


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


def _quote_prefix(raw: bytes, budget: int) -> tuple[str, int]:
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


def _cut_marker(arg: bytes, shown: int, rest: list[bytes]) -> str:
    """What an exec line leaves out: bytes of argument text, and whole arguments."""
    hidden = len(arg) - shown + sum(len(a) for a in rest)
    if rest:
        return f"…(+{hidden} bytes, {len(rest)} more args)"
    return f"…(+{hidden} bytes)"


# ---------------------------------------------------------------------------
# Durations and the status line


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
# Colours


def _ansi(style: str) -> tuple[str, str]:
    """The escape sequences that switch `style` on and off, computed once by rich."""
    rendered = Style.parse(style).render("\0", color_system=ColorSystem.STANDARD)
    on, _, off = rendered.partition("\0")
    return on, off


# role -> rich style; every ANSI sequence the renderer ever emits comes from here.
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
    "other": "",
}


def ansi_codes() -> dict[str, tuple[str, str]]:
    """role -> (on, off) ANSI sequences, as the colour mode uses them."""
    return {role: _ansi(style) if style else ("", "") for role, style in STYLES.items()}


_ANSI = ansi_codes()


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _crop(text: str, cells: int) -> str:
    """`text` cut to `cells` terminal cells, ending in "…" when something was cut."""
    if _cells(text) <= cells:
        return text
    if cells <= 1:
        return "…" if cells == 1 else ""
    if text.isascii():
        return text[: cells - 1] + "…"
    return set_cell_size(text, cells - 1) + "…"


# ---------------------------------------------------------------------------
# Lines


class StreamRenderer:
    """Turns events into lines of text: time, kind, pid, ppid, comm, then what happened.

    `clock` converts an event's monotonic timestamp to wall-clock time.
    `color` adds ANSI colours. `width`, when given, cuts the detail of each line
    so that the line fits that many terminal cells (for a terminal that should
    not wrap); the columns before the detail (55 cells) are never cut. Without
    `width` only an exec's arguments are cut, at DETAIL_MAX characters.
    """

    def __init__(self, clock: Clock, color: bool, width: int | None = None) -> None:
        self._offset_ns = clock.offset_ns
        self._color = color
        self._width = width
        self._second: int | None = None
        self._hms = ""
        self._pids: dict[int, str] = {}
        self._comms: dict[bytes, str] = {}
        self._statuses: dict[int, str] = {}
        self._quoted: dict[bytes, str] = {}
        self._details: dict[type, Callable[[Any], tuple[str, str]]] = {
            ForkEvent: self._fork,
            ExecEvent: self._exec,
            ExitEvent: self._exit,
            SignalEvent: self._signal,
            ReapEvent: self._reap,
        }

    def header(self) -> str:
        text = f"{'TIME':<15} {'KIND':<{_KIND_W}} {'PID':<{_PID_W}} {'PPID':<{_PID_W}} {'COMM':<{_COMM_W}} DETAIL"
        if self._width is not None:
            text = _crop(text, self._width)
        if self._color:
            on, off = _ANSI["header"]
            return f"{on}{text}{off}"
        return text

    def line(self, event: Event) -> str:
        return self.lines([event])[0]

    def lines(self, events: list[Event]) -> list[str]:
        """One line per event. The hot path of the pretty stream, so it works a
        batch at a time with everything it needs in local variables, keeps
        dictionary caches for what repeats (the clock's second, padded pids,
        comms, statuses) and uses no format specs, which cost ~0.1 us each."""
        offset, pids, comms, details = self._offset_ns, self._pids, self._comms, self._details
        width, color = self._width, self._color
        second_shown, hms = self._second, self._hms
        t_on, t_off = _ANSI["time"]
        c_on, c_off = _ANSI["comm"]
        out = []
        for event in events:
            wall = event.ts_ns + offset
            second = wall // 1_000_000_000
            if second != second_shown:
                second_shown = second
                hms = time.strftime("%H:%M:%S.", time.localtime(second))
            stamp = hms + "%06d" % (wall % 1_000_000_000 // 1000)  # noqa: UP031 (faster than a format spec)
            tgid = event.tgid
            if event.pid == tgid:
                pid = pids.get(tgid) or remember(pids, tgid, str(tgid).ljust(_PID_W))
            else:
                pid = f"{tgid}/{event.pid}".ljust(_PID_W)
            ppid = pids.get(event.ppid) or remember(pids, event.ppid, str(event.ppid).ljust(_PID_W))
            comm = comms.get(event.comm)
            if comm is None:
                shown = escape_bytes(event.comm)
                comm = remember(comms, event.comm, shown + " " * (_COMM_W - _cells(shown)))  # cells, not characters
            kind = _KIND_COLUMN.get(event.kind) or event.kind.ljust(_KIND_W)
            detailer = details.get(type(event))
            role, detail = detailer(event) if detailer else ("other", "")
            if width is not None:
                detail = _crop(detail, width - _cells(f"{stamp} {kind} {pid} {ppid} {comm} "))
            if color:
                on, off = _ANSI[role]
                out.append(f"{t_on}{stamp}{t_off} {on}{kind}{off} {pid} {ppid} {c_on}{comm}{c_off} {on}{detail}{off}")
            else:
                out.append(f"{stamp} {kind} {pid} {ppid} {comm} {detail}")
        self._second, self._hms = second_shown, hms
        return out

    def _describe(self, status: WaitStatus) -> str:
        return self._statuses.get(status.raw) or remember(self._statuses, status.raw, status.describe())

    def _quote(self, raw: bytes) -> str:
        """shell_quote, remembered for short values: the same arguments recur."""
        quoted = self._quoted.get(raw)
        if quoted is None:
            quoted = shell_quote(raw)
            if len(raw) <= 256:
                remember(self._quoted, raw, quoted)
        return quoted

    # Each returns (colour role, detail text).

    def _fork(self, ev: ForkEvent) -> tuple[str, str]:
        if ev.clone_flags & CLONE_THREAD:
            return "fork", f"thread {ev.child_pid}"
        notes = []
        if ev.clone_flags & CLONE_VFORK:
            notes.append("vfork")
        if ev.child_ppid != ev.tgid:
            notes.append(f"ppid {ev.child_ppid}")  # CLONE_PARENT: a sibling, not a child
        if notes:
            return "fork", f"process {ev.child_pid} ({', '.join(notes)})"
        return "fork", f"process {ev.child_pid}"

    def _exec(self, ev: ExecEvent) -> tuple[str, str]:
        filename = self._quote(ev.filename)
        if ev.filename_truncated:
            filename += TRUNCATED
        words = [filename]
        used = len(filename)
        argv = ev.argv
        for i, arg in enumerate(argv):
            room = DETAIL_MAX - used - 1
            quoted = self._quote(arg) if len(arg) <= room else None
            if quoted is None or len(quoted) > room:
                shown, nbytes = _quote_prefix(arg, max(room, 0))
                words.append((shown if nbytes else "") + _cut_marker(arg, nbytes, argv[i + 1 :]))
                break
            words.append(quoted)
            used += len(quoted) + 1
        if ev.argv_unreadable:
            words.append("(argv unreadable)")
        if ev.argv_truncated:
            words.append(TRUNCATED)
        if ev.old_pid and ev.old_pid != ev.pid:
            words.append(f"(from thread {ev.old_pid})")
        if ev.errno:
            return "exec_failed", f"FAILED {errno_name(ev.errno)} {' '.join(words)}"
        return "exec", " ".join(words)

    def _exit(self, ev: ExitEvent) -> tuple[str, str]:
        status = ev.status
        described = self._statuses.get(status.raw) or self._describe(status)
        role = "exit_bad" if status.raw else "exit_ok"
        if ev.process_exit:
            who, start = "process", ev.start_ns
        else:
            who, start = "thread", ev.task_start_ns
        if not start:  # the kernel side could not read it: no lifetime to speak of
            return role, f"{who} {described}"
        return role, f"{who} {described} after {format_duration(ev.ts_ns - start)}"

    def _signal(self, ev: SignalEvent) -> tuple[str, str]:
        name = signal_name(ev.signo)
        if ev.stage == SIGNAL_DELIVER:
            if ev.signo == _SIGKILL and ev.group_exit_signo:
                # every thread of a process dying of a fatal signal is sent SIGKILL
                if ev.group_exit_signo == _SIGKILL:
                    return "signal_deliver", "SIGKILL delivered (group exit)"
                cause = signal_name(ev.group_exit_signo)
                return "signal_deliver", f"SIGKILL (group exit by {cause}) delivered"
            if ev.handler == 0:
                return "signal_deliver", f"{name} delivered, default action"
            if ev.handler == 1:
                return "signal_deliver", f"{name} delivered, ignored"
            return "signal_deliver", f"{name} delivered to handler"
        target = f"{ev.target_pid}" if ev.group else f"thread {ev.target_pid}"
        text = f"{name} -> {target}"
        if ev.target_comm:
            text += f" ({escape_bytes(ev.target_comm)})"
        if ev.sender_pid is None:
            text += " from kernel"
        if ev.result:
            text += " " + SIGNAL_RESULTS.get(ev.result, f"result {ev.result}").replace("_", " ")
        return "signal_generate", text

    def _reap(self, ev: ReapEvent) -> tuple[str, str]:
        described = self._statuses.get(ev.status.raw) or self._describe(ev.status)
        return "reap", f"reaped {ev.reaped_pid} ({described})"


# ---------------------------------------------------------------------------
# Writing to a terminal

_CLEAR_LINE = "\r\x1b[K"


class Terminal:
    """Writes batches of lines to a stream, one write call per batch.

    On a TTY a status line stays at the bottom: each batch clears it, writes
    its lines and draws it again without a newline. Elsewhere (a pipe, a file)
    only the lines are written. `width` bounds the status line so it never
    wraps (a wrapped line could not be cleared); by default it is the
    terminal's width, asked of the stream when the status changes.
    """

    def __init__(self, stream: TextIO, tty: bool, width: int | None = None) -> None:
        self._stream = stream
        self._tty = tty
        self._width = width
        self._status = ""

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        body = "\n".join(lines) + "\n"
        if self._tty and self._status:
            self._stream.write(f"{_CLEAR_LINE}{body}{self._status}")
        else:
            self._stream.write(body)
        self._stream.flush()

    def set_status(self, text: str) -> None:
        if not self._tty:
            return
        self._status = _crop(escape_text(text), self._status_width())
        self._stream.write(f"{_CLEAR_LINE}{self._status}")
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._status:
            self._status = ""
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()

    def _status_width(self) -> int:
        if self._width is not None:
            return max(self._width - 1, 0)
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        columns = columns or 80  # a pseudo-terminal nobody sized reports 0
        # one short of the last column: some terminals wrap when it is written
        return max(columns - 1, 0)
