"""What the live view shows, worked out from the session's ProcessTable: one row
per process (threads folded), the processes that ended a moment ago with how
they ended, and the latest failures. Pure Python: no terminal, no /proc."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

from proctrace.formats.text import escape_bytes, shell_quote
from proctrace.formats.views import command_line
from proctrace.formats.words import outcome, process_outcome, user_name
from proctrace.model.events import Event, ExecEvent, ExitEvent, ForkEvent, errno_name
from proctrace.model.process_table import Process, ProcessTable

# How long a process that ended stays in sight.
ENDED_VISIBLE_NS = 5_000_000_000
# At most this many of them: a fork storm ends thousands a second, more than any
# screen holds, and building their rows four times a second would cost the drain.
ENDED_SHOWN_MAX = 200
FAILURES_KEPT = 50
SORTS = ("tree", "cpu", "age")


@dataclass
class ViewState:
    """What the person at the keyboard chose."""

    name_filter: str = ""  # `/`: rows whose command name or command line holds it
    failures_only: bool = False  # `f`
    threads: bool = False  # `t`: a line per live thread under its process
    sort: str = "tree"  # `s` cycles through SORTS
    collapsed: set[int] = field(default_factory=set)  # serials whose subtree is folded (`c`)
    selected: int = 0  # the row index the cursor is on


@dataclass(frozen=True)
class Row:
    """One line of the tree: a process, or (with threads shown) one of its threads."""

    serial: int
    pid: int
    depth: int
    user: str
    command: str  # escaped: safe to print
    age_ns: int
    state: str  # "running", "zombie", "stopped", or the outcome in words ("exit 0", "killed by SIGTERM")
    role: str  # colour role: "exec" (alive), "exit_ok", "exit_bad", "reap" (zombie)
    children: int
    cpu_ns: int | None
    thread: bool = False
    collapsed: bool = False


@dataclass(frozen=True)
class Failure:
    ts_ns: int
    pid: int
    comm: str  # escaped
    words: str


class FailureLog:
    """The latest non-zero exits, deaths by signal and failed execs, as the
    events pass. A miss of a PATH search is no failure: the shell tries the
    next directory."""

    def __init__(self, kept: int = FAILURES_KEPT) -> None:
        self.latest: deque[Failure] = deque(maxlen=kept)

    def write(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is ExitEvent:
                if ev.process_exit and ev.status.raw != 0:
                    words, _ = outcome(ev.status, ev.oom_killed, ev.killed_by_pid, ev.killed_by_comm, ev.oom_memcg)
                    self.latest.append(Failure(ev.ts_ns, ev.tgid, escape_bytes(ev.comm), words))
            elif type(ev) is ExecEvent and ev.errno and not ev.path_search:
                words = f"exec failed {errno_name(ev.errno)} {shell_quote(ev.filename)}"
                self.latest.append(Failure(ev.ts_ns, ev.tgid, escape_bytes(ev.comm), words))


class Rates:
    """Events, processes started and processes ended, counted between two redraws."""

    def __init__(self) -> None:
        self.events = self.started = self.ended = 0

    def write(self, events: list[Event]) -> None:
        self.events += len(events)
        for ev in events:
            if type(ev) is ForkEvent and not ev.thread:
                self.started += 1
            elif type(ev) is ExitEvent and ev.process_exit:
                self.ended += 1

    def take(self) -> tuple[int, int, int]:
        counts = (self.events, self.started, self.ended)
        self.events = self.started = self.ended = 0
        return counts


# (pid) -> (state letter, CPU ns) of a live process, read from /proc at redraw; None when unknown.
LiveReader = Callable[[int], "tuple[str, int] | None"]


def _ended_words(rec: Process) -> str:
    """How it ended, short enough for a column: "exit 2", "killed by SIGTERM", "OOM killed"."""
    if rec.oom_killed:
        return "OOM killed"
    if rec.status is None:
        return process_outcome(rec)[0]
    return rec.status.describe()


def _failed(rec: Process) -> bool:
    if rec.status is not None and rec.status.raw != 0:
        return True
    return any(not ex.path_search for ex in rec.failed_execs)


def _matches(rec: Process, text: str) -> bool:
    needle = text.lower()
    return needle in escape_bytes(rec.comm).lower() or needle in command_line(rec).lower()


class Rows(Sequence[Row]):
    """The rows on screen, in order, each made the first time it is asked for:
    a frame draws the forty or so that fit of the hundreds a storm keeps in
    sight, and making a row (its command line quoted, its user named, its
    outcome in words) was most of what a redraw cost. A row is made from its
    record as the record is when asked, so the view takes its rows under the
    lock that feeds the table, and draws them before letting it go."""

    def __init__(self, entries: list[tuple[Process, int, int]], make: Callable[[Process, int, int], Row]) -> None:
        self._entries = entries  # (process, depth, tid of a thread row or 0)
        self._made: dict[int, Row] = {}
        self._make = make

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._entries)))]
        if index < 0:
            index += len(self._entries)
        row = self._made.get(index)
        if row is None:
            row = self._made[index] = self._make(*self._entries[index])
        return row


def build_rows(table: ProcessTable, state: ViewState, now_ns: int, live: LiveReader | None = None) -> Rows:
    """The rows on screen, in the order chosen: live processes and those that
    ended within ENDED_VISIBLE_NS of `now_ns` (the event clock)."""
    shown = {rec.serial: rec for rec in table.live()}
    for rec in table.finished_since(now_ns - ENDED_VISIBLE_NS, ENDED_SHOWN_MAX):
        if not rec.retired:
            shown[rec.serial] = rec
    kids: dict[int | None, list[Process]] = {}
    for rec in shown.values():
        parent = rec.parent_serial if rec.parent_serial in shown else None
        kids.setdefault(parent, []).append(rec)
    for siblings in kids.values():
        siblings.sort(key=lambda r: (r.start_ns, r.serial))
    read: dict[int, tuple[str, int] | None] = {}  # serial -> /proc's figures, read once a redraw

    def proc_of(rec: Process) -> tuple[str, int] | None:
        if live is None or rec.end_ns is not None:
            return None
        if rec.serial not in read:
            read[rec.serial] = live(rec.tgid)
        return read[rec.serial]

    def cpu_of(rec: Process) -> int | None:
        if rec.end_ns is None:
            proc = proc_of(rec)
            return None if proc is None else proc[1]
        return rec.usage.cpu_user_ns + rec.usage.cpu_sys_ns if rec.usage is not None else None

    def age_of(rec: Process) -> int:
        if rec.end_ns is None or rec.waiting:
            return max(0, now_ns - rec.start_ns) if rec.start_ns else 0
        return rec.lifetime_ns or 0

    def make(rec: Process, depth: int, tid: int) -> Row:
        if tid:
            return Row(rec.serial, tid, depth, "", "", 0, "thread", "fork", 0, None, thread=True)
        children = len(kids.get(rec.serial, ()))
        collapsed = rec.serial in state.collapsed
        if rec.waiting:  # exited, not yet reaped: how it ended is known already
            status, role = f"zombie, {_ended_words(rec)}", "reap"
        elif rec.end_ns is None:
            proc = proc_of(rec)
            stopped = proc is not None and proc[0] in "tT"
            status, role = ("stopped", "signal_deliver") if stopped else ("running", "exec")
        else:
            status, role = _ended_words(rec), process_outcome(rec)[1]
        return Row(
            rec.serial, rec.tgid, depth, user_name(rec.uid), command_line(rec),
            age_of(rec), status, role, children, cpu_of(rec), collapsed=collapsed,
        )  # fmt: skip

    entries: list[tuple[Process, int, int]] = []

    def walk(rec: Process, depth: int) -> None:
        keep = (not state.failures_only or _failed(rec)) and (not state.name_filter or _matches(rec, state.name_filter))
        if keep:
            entries.append((rec, depth, 0))
            if state.threads and rec.tids and rec.end_ns is None:
                entries.extend((rec, depth + 1, tid) for tid in sorted(rec.tids))
        if rec.serial in state.collapsed and keep:
            return
        for child in kids.get(rec.serial, ()):
            walk(child, depth + (1 if keep else 0))

    for root in kids.get(None, ()):
        walk(root, 0)
    if state.sort != "tree":  # a flat list of processes, without their threads
        flat = [rec for rec, _, tid in entries if not tid]
        if state.sort == "cpu":
            flat.sort(key=lambda r: -(cpu_of(r) or 0))
        else:
            flat.sort(key=age_of)
        entries = [(rec, 0, 0) for rec in flat]
    return Rows(entries, make)
