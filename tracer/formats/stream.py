"""The pretty event stream: one line per event, for people at a terminal.

This module owns how an event looks on a terminal: the columns, the line of
each kind of event, cutting a line to the terminal's width, and the status
line kept at the bottom of a TTY. A PATH miss (tracer/model/path_search.py)
has no line: the exec that ends its search says how many it took. The
escaping, quoting, durations and colours are tracer/formats/text.py's, the
words for outcomes and signals tracer/formats/words.py's, and the JSON form is
tracer/formats/jsonl.py.

Two constraints shape the code:

* Speed. A fork storm produces tens of thousands of events a second, and the
  renderer runs on the same core that drains the kernel buffer. Lines are built
  with f-strings and ANSI sequences computed once from rich styles; no rich
  renderable is made per event.
* Hostile strings. Any process picks its own comm, filename and arguments. What
  we print must never reach the terminal as a control sequence, so every such
  string goes through text.escape_bytes or text.shell_quote.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable
from typing import Any, BinaryIO, TextIO

from proctrace import pure_python
from proctrace.formats.text import (
    DETAIL_MAX,
    TRUNCATED,
    ansi_codes,
    cell_width,
    crop_cells,
    cut_marker,
    escape_bytes,
    escape_text,
    format_duration,
    quote_prefix,
    shell_quote,
)
from proctrace.formats.words import (
    cgroup_words,
    cred_words,
    delivered_words,
    exec_notes,
    group_of,
    outcome,
    privilege_gain_words,
    result_words,
    summary_words,
)
from proctrace.model.clock import Clock
from proctrace.model.context import ProcessContext
from proctrace.model.events import (
    CLONE_THREAD,
    CLONE_VFORK,
    EVENT_KINDS,
    SIGNAL_DELIVER,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
    errno_name,
    signal_name,
)
from proctrace.model.memo import remember
from proctrace.model.path_search import PendingMisses, count_path_miss, take_path_misses

# Column widths: a pid is at most 7 digits (pid_max <= 4194304), a comm 15 bytes.
_KIND_W, _PID_W, _COMM_W = 6, 7, 15
_KIND_COLUMN = {kind: kind.ljust(_KIND_W) for kind in EVENT_KINDS}
_ANSI = ansi_codes()

# Terminal cells: text.py's, under the short names the hot path uses.
_cells, _crop = cell_width, crop_cells

# The compiled renderer (_faststream.c): optional, and not used with
# PROCTRACE_PURE_PYTHON=1, as the compiled wire decoder is not.
_faststream: Any = None
if not pure_python():
    try:
        from proctrace.formats import _faststream  # type: ignore[attr-defined,no-redef]
    except ImportError:
        _faststream = None


def utf8_buffer(stream: TextIO) -> BinaryIO | None:
    """The binary buffer under a text stream that encodes in UTF-8, or None
    (a StringIO, another encoding)."""
    encoding = getattr(stream, "encoding", None)
    buffer = getattr(stream, "buffer", None)
    if buffer is None or not encoding:
        return None
    try:
        return buffer if codecs.lookup(encoding).name == "utf-8" else None
    except LookupError:
        return None


def _hms(second: int) -> str:
    """ "HH:MM:SS." of a wall-clock second, local time: each line's time, to the second."""
    return time.strftime("%H:%M:%S.", time.localtime(second))


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
        self._outcomes: dict[int, tuple[str, str]] = {}
        self._quoted: dict[bytes, str] = {}
        self._tags: dict[bytes, str] = {}  # cgroup path -> " [container ...]", " [unit]" or ""
        # The PATH misses not yet said: the exec that ends a search may come in
        # a later batch than its misses.
        self._path_misses: PendingMisses = {}
        self._folded = False  # the batch being rendered holds a PATH miss
        self._details: dict[type, Callable[[Any], tuple[str, str]]] = {
            ForkEvent: self._fork,
            ExecEvent: self._exec,
            ExitEvent: self._exit,
            SignalEvent: self._signal,
            SignalSummaryEvent: self._summary,
            ReapEvent: self._reap,
            CredEvent: self._cred,
            CgroupEvent: self._cgroup,
        }
        self._compiled = self._compile()

    def header(self) -> str:
        text = f"{'TIME':<15} {'KIND':<{_KIND_W}} {'PID':<{_PID_W}} {'PPID':<{_PID_W}} {'COMM':<{_COMM_W}} DETAIL"
        if self._width is not None:
            text = _crop(text, self._width)
        if self._color:
            on, off = _ANSI["header"]
            return f"{on}{text}{off}"
        return text

    def line(self, event: Event) -> str:
        """The line of `event`; "" for an event folded into a later line (a PATH miss)."""
        shown = self.lines([event])
        return shown[0] if shown else ""

    def lines(self, events: list[Event]) -> list[str]:
        """One line per event, except a PATH miss, which the line of the exec
        that ends its search counts."""
        if self._compiled is not None:
            return self._compiled.lines(events)
        return self.python_lines(events)

    def text(self, events: list[Event], errors: str = "strict") -> bytes:
        """The lines of lines(events), each ending in a newline, in UTF-8
        (`errors` as str.encode takes it): what a stream written in UTF-8
        is given. The compiled renderer writes them into one buffer, without
        the str per line, the join and the encoding (a third of writing a
        storm's batch: "µs" makes the text non-ASCII, so each of those goes
        character by character)."""
        if self._compiled is not None:
            return self._compiled.text(events, errors)
        return "".join(f"{line}\n" for line in self.python_lines(events)).encode("utf-8", errors)

    def _compile(self) -> Any:
        """The compiled renderer of the common events (_faststream.c), sharing
        this renderer's caches and handing it every other event; None where it
        is not built, or is not wanted (the width cut, PROCTRACE_PURE_PYTHON=1)."""
        if _faststream is None or self._width is not None:
            return None
        return _faststream.Renderer(
            {
                "classes": {cls.__name__: cls for cls in (ForkEvent, ExecEvent, ExitEvent, ReapEvent)},
                "kind_columns": {
                    cls.__name__: _KIND_COLUMN[cls.kind] for cls in (ForkEvent, ExecEvent, ExitEvent, ReapEvent)
                },
                "ProcessContext": ProcessContext,
                "WaitStatus": WaitStatus,
                "comms": self._comms,
                "outcomes": self._outcomes,
                "quoted": self._quoted,
                "tags": self._tags,
                "path_misses": self._path_misses,
                "comm_miss": self._comm_column,
                "quote": self._quote,
                "hms": _hms,
                "python_lines": self.python_lines,
                "time_on": _ANSI["time"][0],
                "time_off": _ANSI["time"][1],
                "comm_on": _ANSI["comm"][0],
                "comm_off": _ANSI["comm"][1],
                "roles": _ANSI,
                "offset_ns": self._offset_ns,
                "detail_max": DETAIL_MAX,
                "pid_width": _PID_W,
                "color": self._color,
            }
        )

    def _pid_column(self, pid: int) -> str:
        return remember(self._pids, pid, str(pid).ljust(_PID_W))

    def _comm_column(self, comm: bytes) -> str:
        shown = escape_bytes(comm)
        return remember(self._comms, comm, shown + " " * (_COMM_W - _cells(shown)))  # cells, not characters

    def python_lines(self, events: list[Event]) -> list[str]:
        """lines(), in Python: the reference, which the compiled renderer
        follows line for line and hands every event it does not render. The
        hot path of the pretty stream where it is not built, so it works a
        batch at a time with everything it needs in local variables, keeps
        dictionary caches for what repeats (the clock's second, padded pids,
        comms, outcomes) and uses no format specs, which cost ~0.1 us each."""
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
                hms = _hms(second)
            stamp = hms + "%06d" % (wall % 1_000_000_000 // 1000)  # noqa: UP031 (faster than a format spec)
            tgid = event.tgid
            pid = (
                (pids.get(tgid) or self._pid_column(tgid)) if event.pid == tgid else f"{tgid}/{event.pid}".ljust(_PID_W)
            )
            ppid = pids.get(event.ppid) or self._pid_column(event.ppid)
            comm = comms.get(event.comm) or self._comm_column(event.comm)
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
        if self._folded:
            # Rare, so dropped here rather than tested for in the loop above,
            # which would cost every event of every batch.
            self._folded = False
            out = [line for line, ev in zip(out, events, strict=True) if not (type(ev) is ExecEvent and ev.path_search)]
        return out

    def _outcome(self, status: WaitStatus) -> tuple[str, str]:
        return remember(self._outcomes, status.raw, outcome(status))

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
        if ev.path_search:
            return self._path_miss(ev)
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
                shown, nbytes = quote_prefix(arg, max(room, 0))
                words.append((shown if nbytes else "") + cut_marker(arg, nbytes, argv[i + 1 :]))
                break
            words.append(quoted)
            used += len(quoted) + 1
        from_thread = ev.old_pid if ev.old_pid != ev.pid else 0
        if ev.argv_unreadable or ev.argv_truncated or from_thread or self._path_misses:
            misses = take_path_misses(self._path_misses, ev) if self._path_misses and not ev.errno else 0
            words.extend(exec_notes(ev.argv_unreadable, ev.argv_truncated, from_thread, misses))
        if ev.errno:
            return "exec_failed", f"FAILED {errno_name(ev.errno)} {' '.join(words)}"
        ctx = ev.context
        if ctx is None:
            return "exec", " ".join(words)
        role = "exec"
        before, after = ctx.creds_before, ctx.creds
        if before is not None and after is not None and ctx.privilege_gain:
            words.append(f"({privilege_gain_words(before, after)})")
            role = "privilege"
        cgroup = ctx.cgroup
        if cgroup is not None:
            tag = self._tags.get(cgroup)
            if tag is None:
                group = group_of(cgroup)
                tag = remember(self._tags, cgroup, "" if group is None else f" [{group}]")
            return role, " ".join(words) + tag
        return role, " ".join(words)

    def _path_miss(self, ev: ExecEvent) -> tuple[str, str]:
        """Count a PATH miss for the exec that ends its search; lines() drops its line."""
        count_path_miss(self._path_misses, ev)
        self._folded = True
        return "exec", ""

    def _exit(self, ev: ExitEvent) -> tuple[str, str]:
        status = ev.status
        if ev.oom_killed or ev.killed_by_pid is not None:  # a death to explain: once per process at most
            described, role = outcome(status, ev.oom_killed, ev.killed_by_pid, ev.killed_by_comm, ev.oom_memcg)
        else:
            described, role = self._outcomes.get(status.raw) or self._outcome(status)
        if ev.process_exit:
            who, start = "process", ev.start_ns
        else:
            who, start = "thread", ev.task_start_ns
        if not start:  # the kernel side could not read it: no lifetime to speak of
            return role, f"{who} {described}"
        return role, f"{who} {described} after {format_duration(ev.ts_ns - start)}"

    def _signal(self, ev: SignalEvent) -> tuple[str, str]:
        if ev.stage == SIGNAL_DELIVER:
            return "signal_deliver", delivered_words(ev.signo, ev.handler, ev.group_exit_signo, terse=True)
        target = f"{ev.target_pid}" if ev.group else f"thread {ev.target_pid}"
        text = f"{signal_name(ev.signo)} -> {target}"
        if ev.target_comm:
            text += f" ({escape_bytes(ev.target_comm)})"
        if ev.sender_pid is None:
            text += " from kernel"
        if ev.result:
            text += " " + result_words(ev.result)
        return "signal_generate", text

    def _summary(self, ev: SignalSummaryEvent) -> tuple[str, str]:
        return "signal_generate", summary_words(ev)

    def _cred(self, ev: CredEvent) -> tuple[str, str]:
        return "privilege" if ev.privilege_gain else "other", cred_words(ev)

    def _cgroup(self, ev: CgroupEvent) -> tuple[str, str]:
        return "other", cgroup_words(ev.action, ev.path, ev.target_id)

    def _reap(self, ev: ReapEvent) -> tuple[str, str]:
        described = (self._outcomes.get(ev.status.raw) or self._outcome(ev.status))[0]
        return "reap", f"reaped {ev.reaped_pid} ({described})"


# ---------------------------------------------------------------------------
# Writing to a terminal

_CLEAR_LINE = "\r\x1b[K"


class Terminal:
    """Writes batches of lines to a stream, one flush per batch.

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
        # Where UTF-8 text may be written as bytes, under the text layer
        # (which every write here flushes, so nothing waits in it).
        self.binary = utf8_buffer(stream)
        self.errors = getattr(stream, "errors", None) or "strict"

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        body = "\n".join(lines)
        if self._tty:
            # One write: a status line is redrawn with the batch, never apart from it.
            clear = _CLEAR_LINE if self._status else ""
            self._stream.write(f"{clear}{body}\n{self._status}")
        else:
            # Elsewhere the last newline is written apart, into the same buffer
            # before the one flush: adding it would copy the whole text once
            # more, and once an exit took microseconds ("µs") the text is not
            # ASCII, which makes each copy, and the encoding, go character by
            # character (60 of the 205 ns a line of writing a storm's batch).
            self._stream.write(body)
            self._stream.write("\n")
        self._stream.flush()

    def write_text(self, body: bytes) -> None:
        """write_lines for lines already in UTF-8, each ending in a newline
        (StreamRenderer.text); only where `binary` is not None."""
        if not body:
            return
        binary = self.binary
        assert binary is not None
        if self._tty:
            # One write, as in write_lines.
            clear = _CLEAR_LINE if self._status else ""
            binary.write(clear.encode() + body + self._status.encode("utf-8", self.errors))
        else:
            binary.write(body)
        binary.flush()

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
