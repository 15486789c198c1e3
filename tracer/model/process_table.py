"""The process table: each process's whole life, rebuilt from the event stream.

This module owns the model behind the end-of-session views (tracer/formats/views.py):
who forked a process, what it exec'd, its threads, the signals it got, how it
ended, who reaped it and when, and what it spawned. It is fed as a Sink, so
live tracing and replay feed it the same way, and it needs neither root nor bcc.

What shapes it:

* Identity. A process is its pid together with its start time. A pid is only
  free again once its holder is reaped, so at any moment one process holds a
  pid; when a new process turns up on a pid, the old holder is retired, never
  merged with the new one.
* A fork event is the parent's: it does not carry the child's start time, which
  the kernel stamps in copy_process shortly *before* the fork tracepoint. The
  child's record starts at the fork's timestamp, marked inexact, and takes the
  true start from the child's first own event when that start lies just before
  the fork.
* Events come ordered by timestamp (tracer/model/ordering.py), but nothing here relies
  on it for correctness of identity: an event for a process nobody announced
  (its fork lost, or started before the snapshot) creates a record, and a fork
  that arrives after its child's first events is attached to that child.
* Nothing is invented. The kernel does not report reparenting: an orphan's new
  parent is read from the `ppid` of its later events (or from who reaps it),
  and the moment is its old parent's exit, when the kernel reparents. A task
  that only acts on a traced process (reaps it, signals it) gets no record of
  its own: in `-- COMMAND` mode that is proctrace itself reaping the command.
* Reaps are seen through wait4/waitid only. A child the kernel reaps itself
  (its parent ignores SIGCHLD) stays a zombie here until its pid is reused.
* PATH misses (tracer/model/path_search.py) stay among the failed execs,
  marked, but the summary does not count them as failures: the exec that ended
  their search carries how many there were.
* Context. A process keeps the context of its latest exec (where and as whom
  it runs, tracer/model/context.py), or, from before tracing, the snapshot's;
  its current credentials, which a fork passes on and a cred event changes; and
  the cgroup id of its latest event. The paths of those ids come from the
  session's CgroupTable (tracer/model/cgroups.py; the pipeline keeps it true
  before any sink sees an event), so the summary can count processes by
  container or unit (group_key) even when they never exec'd.
* Memory. Finished (reaped) processes stay for the views only up to a horizon;
  the aggregates of the summary (Aggregates) count every process. Lists kept per
  process are capped, with a count of what was left out.
"""

from __future__ import annotations

import heapq
import signal as signal_mod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from proctrace.model.cgroups import CgroupTable, container_id_of, unit_of
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CLONE_THREAD,
    EVENT_CLASSES,
    FOLD_PTRACE,
    LIFECYCLE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    ResourceUsage,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
    errno_name,
)
from proctrace.model.memo import remember
from proctrace.model.path_search import PendingMisses, count_path_miss, take_path_misses
from proctrace.model.procsnap import ProcInfo

KEEP_FINISHED = 10_000
"""Finished processes kept for the views; older ones leave the table."""

ITEMS_MAX = 1_000
"""Entries kept per process in each list (execs, signals, stops, children, comm changes)."""

KEYS_MAX = 10_000
"""Distinct keys kept per aggregate counter (commands, failures); the rest count as "other"."""

LOSS_WINDOW_NS = 50_000_000
"""How far before a loss report a lost event may have been stamped: the live loop
reports losses after each 20 ms drain, and events wait up to 5 ms more in the
reorder window. Every process alive at any time in the window is marked."""

FORK_START_SLACK_NS = 1_000_000_000
"""The longest gap accepted between a child's start and its fork event (the time
copy_process takes, which for a large address space is milliseconds)."""

SNAPSHOT_START_SLACK_NS = 1_000_000_000
"""/proc start times are boot-time based, in 10 ms clock ticks: an event's exact
start may differ from the snapshot's by that much."""

TOP_LIFETIMES = 5
TOP_CONSUMERS = 10  # processes by each of CONSUMER_RANKINGS in the summary

T = TypeVar("T")
K = TypeVar("K")

# Default actions that stop a process; SIGCONT generated to it continues it.
STOP_SIGNALS = frozenset(
    int(s) for s in (signal_mod.SIGSTOP, signal_mod.SIGTSTP, signal_mod.SIGTTIN, signal_mod.SIGTTOU)
)
SIGCONT = int(signal_mod.SIGCONT)
_HANDLER_DEFAULT = 0


@dataclass(slots=True)
class ExecRecord:
    ts_ns: int
    filename: bytes
    argv: list[bytes]
    errno: int = 0  # non-zero: a failed exec, the process image did not change
    argv_truncated: bool = False
    filename_truncated: bool = False
    argv_unreadable: bool = False
    old_pid: int = 0  # the non-leader thread that called exec, else 0
    path_search: bool = False  # a failed exec that was a miss of a PATH search
    path_misses: int = 0  # a successful exec: the PATH misses of its search just before it
    context: ProcessContext | None = None  # a successful exec: where and as whom the new image runs

    @property
    def privilege_gain(self) -> bool:
        return self.context is not None and self.context.privilege_gain


@dataclass(slots=True)
class SignalRecord:
    ts_ns: int
    signo: int
    stage: int  # SIGNAL_GENERATE or SIGNAL_DELIVER
    sender_pid: int | None
    sender_serial: int | None = None  # the sending process's record, when known
    result: int = 0  # generate: SIGNAL_RESULTS
    handler: int = 0  # deliver: 0 default, 1 ignore, else a handler
    group_exit_signo: int = 0  # deliver: the real cause of a teardown SIGKILL


@dataclass(slots=True)
class FoldedRecord:
    """Signals the kernel counted instead of sending, for one reason, stage,
    signal and target, over the process's whole life (SignalSummaryEvent)."""

    reason: int  # FOLD_PTRACE or FOLD_RATE
    stage: int
    signo: int
    target_pid: int
    target_comm: bytes
    count: int
    first_ns: int
    last_ns: int


@dataclass(slots=True)
class StopRecord:
    stopped_ns: int
    signo: int
    continued_ns: int | None = None


@dataclass(slots=True)
class Adoption:
    previous: int  # the parent that died
    by: int  # the new parent's pid
    ts_ns: int | None  # the old parent's exit, when it was seen
    seen_ns: int  # the first event that showed the new parent
    by_serial: int | None = None


@dataclass(slots=True, eq=False)
class Process:
    """One process, from fork (or first sight) to reap."""

    serial: int  # unique in the table: links between records never go stale
    tgid: int
    start_ns: int
    start_exact: bool  # False: the fork's time or the snapshot's, until an event says
    ppid: int  # the parent now (after any adoption)
    original_ppid: int
    comm: bytes
    uid: int = 0
    origin_serial: int | None = None  # the parent it was born to, for the tree
    parent_serial: int | None = None  # the parent now
    forked_by: int | None = None  # the pid that forked it (differs from ppid with CLONE_PARENT)
    forked_by_serial: int | None = None
    forked_ns: int | None = None
    first_seen_ns: int | None = None
    pre_existing: bool = False
    incomplete: bool = False  # events were lost while it was alive
    seen: bool = False  # any event of the session concerned it
    # The lists below hold the shared () until their first entry (_append_capped):
    # most processes never get a signal, a stop, a child or a failed exec, and
    # seven empty lists made per process were about a tenth of what a storm cost the table.
    inherited_argv: Sequence[bytes] = ()  # its command line before any exec
    comms: Sequence[tuple[int, bytes]] = ()  # (ts_ns, comm) at each change
    execs: Sequence[ExecRecord] = ()
    failed_execs: Sequence[ExecRecord] = ()  # PATH misses included, marked
    path_misses: int = 0  # failed execs that were misses of a PATH search, not failures
    signals: Sequence[SignalRecord] = ()
    stops: Sequence[StopRecord] = ()
    folded: dict[tuple[int, int, int, int], FoldedRecord] | None = None  # by (reason, stage, signo, target)
    adoptions: Sequence[Adoption] = ()
    children: Sequence[int] = ()  # tgids, the first ITEMS_MAX
    children_count: int = 0
    omitted: int = 0  # list entries beyond ITEMS_MAX, not kept
    live_threads: int = 1
    max_threads: int = 1
    threads_created: int = 1
    tids: set[int] | None = None  # live threads other than the leader
    live_children: set[int] | None = None  # serials of children not yet reaped
    leader_exit_ns: int | None = None  # the main thread ended before the process
    end_ns: int | None = None  # the process exit (its last thread)
    status: WaitStatus | None = None
    orphaned_ns: int | None = None  # its parent exited while it was unreaped
    reaped_ns: int | None = None
    reaper: int | None = None
    reaper_serial: int | None = None
    retired: bool = False  # left the table unreaped: a new process took its pid
    counted: bool = False  # already in the aggregates
    context: ProcessContext | None = None  # its latest exec's, else the snapshot's; None when unknown
    creds: Credentials | None = None  # now: its exec's, changed by cred events, inherited at fork
    cred_changes: Sequence[CredEvent] = ()  # after exec (set*id, setgroups, capset)
    cgroup_id: int = 0  # the cgroup v2 id of its latest event; 0 when unknown
    usage: ResourceUsage | None = None  # what it used, all threads, read at its exit
    autoreaped: bool = False  # released by the kernel, not by wait() (ReapEvent.autoreaped)
    oom_killed: bool = False  # what ended it, where known (ExitEvent says more)
    oom_memcg: bytes | None = None
    killed_by_pid: int | None = None
    killed_by_comm: bytes | None = None

    @property
    def pid(self) -> int:
        return self.tgid

    @property
    def key(self) -> tuple[int, int]:
        return (self.tgid, self.start_ns)

    @property
    def exited(self) -> bool:
        return self.end_ns is not None

    @property
    def lifetime_ns(self) -> int | None:
        if self.end_ns is None or not self.start_ns:
            return None
        return max(0, self.end_ns - self.start_ns)

    @property
    def zombie_ns(self) -> int | None:
        if self.end_ns is None or self.reaped_ns is None:
            return None
        if self.autoreaped:
            return 0  # released at its exit: reaped_ns is when its task was freed, later
        return max(0, self.reaped_ns - self.end_ns)

    @property
    def adopted_by(self) -> int | None:
        return self.adoptions[-1].by if self.adoptions else None

    @property
    def adopted_ns(self) -> int | None:
        return self.adoptions[-1].ts_ns if self.adoptions else None

    @property
    def threads(self) -> int:
        """The most threads it had at once, the main thread included."""
        return self.max_threads

    @property
    def argv(self) -> Sequence[bytes]:
        """Its command line: that of its last exec, else the one it was born with."""
        return self.execs[-1].argv if self.execs else self.inherited_argv

    @property
    def privilege_gain(self) -> bool:
        """Whether it gained privilege: at an exec, or by a change of credentials."""
        return any(ex.privilege_gain for ex in self.execs) or any(c.privilege_gain for c in self.cred_changes)

    @property
    def waiting(self) -> bool:
        """A zombie: exited and not (yet) reaped."""
        return self.end_ns is not None and self.reaped_ns is None and not self.retired


@dataclass(frozen=True, slots=True)
class LifetimeEntry:
    """A finished process, as the summary's longest/shortest lists keep it."""

    lifetime_ns: int
    tgid: int
    comm: bytes
    argv: tuple[bytes, ...]
    status: WaitStatus | None
    pre_existing: bool


@dataclass(slots=True)
class CommandUsage:
    """What the processes of one command used, summed (peak RSS: the largest)."""

    processes: int = 0
    cpu_ns: int = 0
    max_rss_kb: int = 0
    read_bytes: int | None = None  # None: the kernel counted it for none of them
    write_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Consumer:
    """A finished process as the summary's top consumers keep it."""

    cpu_ns: int
    tgid: int
    comm: bytes
    argv: tuple[bytes, ...]
    usage: ResourceUsage


# What the summary ranks processes by: a heavy reader or a memory hog that
# used little CPU is still a top consumer.
CONSUMER_RANKINGS: dict[str, Callable[[ResourceUsage], int]] = {
    "CPU": lambda u: u.cpu_user_ns + u.cpu_sys_ns,
    "peak RSS": lambda u: u.max_rss_kb,
    "I/O": lambda u: (u.read_bytes or 0) + (u.write_bytes or 0),
}


@dataclass(frozen=True, slots=True)
class Killing:
    """A process killed by a signal another process sent, or by the OOM killer."""

    ts_ns: int
    victim: int
    victim_comm: bytes
    signal: str
    killer: int | None  # None: the OOM killer
    killer_comm: bytes | None


@dataclass(slots=True)
class CommandCount:
    processes: int = 0
    ok: int = 0  # exit 0
    failed: int = 0  # non-zero exit or killed
    unknown: int = 0  # gone without its exit being seen
    running: int = 0  # alive (or a zombie) at the end; filled in by command_counts()


class BoundedCounter(Generic[K]):
    """A Counter with at most `cap` keys: new keys beyond it are counted as `other`,
    so a process choosing random names cannot grow it without bound."""

    def __init__(self, cap: int = KEYS_MAX) -> None:
        self.cap = cap
        self.counts: dict[K, int] = {}
        self.other = 0

    def add(self, key: K, n: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += n
        elif len(counts) < self.cap:
            counts[key] = n
        else:
            self.other += n


class Aggregates:
    """What the summary reports, counted over every process of the session,
    including those that have since left the table."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.processes = 0  # counted when they ended, or were seen to be gone
        self.commands: dict[bytes, CommandCount] = {}
        self.other_commands = CommandCount()
        # Processes by container or unit (None: neither, or not known)
        self.groups: dict[GroupKey | None, CommandCount] = {}
        self.other_groups = CommandCount()
        self.nonzero_exits = 0
        self.signal_deaths = 0
        self.failed_execs = 0  # real failures: not the misses of a PATH search
        self.path_misses = 0
        self.failures: BoundedCounter[tuple[str, bytes]] = BoundedCounter()  # (kind, comm or file) -> count
        self.signals_sent: BoundedCounter[int] = BoundedCounter()  # signo -> count
        self.signals_from_kernel: BoundedCounter[int] = BoundedCounter()  # signo -> count, no sending task
        # Signals the kernel counted instead of sending one by one (SignalSummaryEvent)
        self.ptrace_stops = 0  # SIGCHLDs generated to tell a tracer of a stop
        self.signals_suppressed = 0  # generated beyond the rate limit
        self.deliveries_folded = 0  # deliveries of either kind, counted where they were delivered
        self.usage_by_command: dict[bytes, CommandUsage] = {}
        # Per ranking, a min-heap of (figure, seq, consumer): the top TOP_CONSUMERS
        self._consumers: dict[str, list[tuple[int, int, Consumer]]] = {name: [] for name in CONSUMER_RANKINGS}
        self.oom_kills = 0
        self.killings: list[Killing] = []  # the first ITEMS_MAX, in order
        self.killings_count = 0
        self._longest: list[tuple[int, int, LifetimeEntry]] = []  # min-heap: the smallest of the top
        self._shortest: list[tuple[int, int, LifetimeEntry]] = []  # min-heap on -lifetime
        self._seq = 0

    def command(self, comm: bytes) -> CommandCount:
        found = self.commands.get(comm)
        if found is None:
            if len(self.commands) >= KEYS_MAX:
                return self.other_commands
            found = self.commands[comm] = CommandCount()
        return found

    def group(self, key: GroupKey | None) -> CommandCount:
        found = self.groups.get(key)
        if found is None:
            if len(self.groups) >= KEYS_MAX:
                return self.other_groups
            found = self.groups[key] = CommandCount()
        return found

    def process_ended(self, rec: Process, group: GroupKey | None = None) -> None:
        """Count a process once: at its exit, or when it is found gone without
        one; `group` is where it ran (ProcessTable.group_of)."""
        rec.counted = True
        self.processes += 1
        counts = self.command(rec.comm)
        counts.processes += 1
        in_group = self.group(group)
        in_group.processes += 1
        status = rec.status
        if status is None:
            counts.unknown += 1
            in_group.unknown += 1
        elif status.raw == 0:
            counts.ok += 1
            in_group.ok += 1
        elif status.exit_code is not None:
            in_group.failed += 1
            counts.failed += 1
            self.nonzero_exits += 1
            self.failures.add((f"exit {status.exit_code}", rec.comm))
        else:
            counts.failed += 1
            in_group.failed += 1
            self.signal_deaths += 1
            self.failures.add((status.describe(), rec.comm))
        lifetime = rec.lifetime_ns
        if lifetime is not None:
            self._rank(lifetime, rec)
        if rec.usage is not None:
            self._consumed(rec, rec.usage)
        if status is not None and status.signal is not None and (rec.oom_killed or rec.killed_by_pid is not None):
            self.oom_kills += rec.oom_killed
            self.killings_count += 1
            if len(self.killings) < ITEMS_MAX:
                killer = None if rec.oom_killed else rec.killed_by_pid
                killer_comm = None if rec.oom_killed else rec.killed_by_comm
                self.killings.append(Killing(rec.end_ns or 0, rec.tgid, rec.comm, status.signal, killer, killer_comm))

    def _consumed(self, rec: Process, usage: ResourceUsage) -> None:
        cpu = usage.cpu_user_ns + usage.cpu_sys_ns
        by_command = self.usage_by_command.get(rec.comm)
        if by_command is None:
            if len(self.usage_by_command) >= KEYS_MAX:
                by_command = None
            else:
                by_command = self.usage_by_command[rec.comm] = CommandUsage()
        if by_command is not None:
            by_command.processes += 1
            by_command.cpu_ns += cpu
            by_command.max_rss_kb = max(by_command.max_rss_kb, usage.max_rss_kb)
            if usage.read_bytes is not None:
                by_command.read_bytes = (by_command.read_bytes or 0) + usage.read_bytes
            if usage.write_bytes is not None:
                by_command.write_bytes = (by_command.write_bytes or 0) + usage.write_bytes
        self._seq += 1
        consumer = None  # made only for a process that enters a ranking
        for name, figure_of in CONSUMER_RANKINGS.items():
            top = self._consumers[name]
            figure = figure_of(usage)
            if figure <= 0 or (len(top) >= TOP_CONSUMERS and figure <= top[0][0]):
                continue  # used none of it, or less than the top already holds
            consumer = consumer or Consumer(cpu, rec.tgid, rec.comm, tuple(rec.argv), usage)
            if len(top) < TOP_CONSUMERS:
                heapq.heappush(top, (figure, self._seq, consumer))
            else:
                heapq.heapreplace(top, (figure, self._seq, consumer))

    def top_consumers(self, ranking: str = "CPU") -> list[Consumer]:
        """The processes that used the most of `ranking` (a key of
        CONSUMER_RANKINGS), most first; ties in the order they ended."""
        return [entry for _, _, entry in sorted(self._consumers[ranking], key=lambda item: (-item[0], item[1]))]

    def exec_failed(self, ex: ExecRecord) -> None:
        if ex.path_search:
            self.path_misses += 1  # the search went on and found the file: not a failure
            return
        self.failed_execs += 1
        self.failures.add((f"exec {errno_name(ex.errno)}", ex.filename))

    def signal_sent(self, signo: int, from_kernel: bool, n: int = 1) -> None:
        self.signals_sent.add(signo, n)
        if from_kernel:
            self.signals_from_kernel.add(signo, n)

    def signals_folded(self, ev: SignalSummaryEvent) -> None:
        if ev.stage != SIGNAL_GENERATE:
            self.deliveries_folded += ev.count
            return
        if ev.reason == FOLD_PTRACE:
            self.ptrace_stops += ev.count
        else:
            self.signals_suppressed += ev.count
        self.signal_sent(ev.signo, from_kernel=False, n=ev.count)

    def _rank(self, lifetime: int, rec: Process) -> None:
        # Two heaps of TOP_LIFETIMES entries each; an entry is made only when it ranks.
        longest, shortest = self._longest, self._shortest
        ranks_long = len(longest) < TOP_LIFETIMES or lifetime > longest[0][0]
        ranks_short = len(shortest) < TOP_LIFETIMES or -lifetime > shortest[0][0]
        if not (ranks_long or ranks_short):
            return
        self._seq += 1
        entry = LifetimeEntry(lifetime, rec.tgid, rec.comm, tuple(rec.argv), rec.status, rec.pre_existing)
        if ranks_long:
            item = (lifetime, self._seq, entry)
            if len(longest) < TOP_LIFETIMES:
                heapq.heappush(longest, item)
            else:
                heapq.heapreplace(longest, item)
        if ranks_short:
            item = (-lifetime, self._seq, entry)
            if len(shortest) < TOP_LIFETIMES:
                heapq.heappush(shortest, item)
            else:
                heapq.heapreplace(shortest, item)

    def longest(self) -> list[LifetimeEntry]:
        return [entry for _, _, entry in sorted(self._longest, key=lambda item: (-item[0], item[1]))]

    def shortest(self) -> list[LifetimeEntry]:
        return [entry for _, _, entry in sorted(self._shortest, key=lambda item: (-item[0], item[1]))]


GroupKey = tuple[str, bytes]
"""Where a process runs, for counting by it: ("container", the 64-hex id) or
("unit", the systemd unit), by the rules of tracer/model/cgroups.py."""

_group_keys: dict[bytes, GroupKey | None] = {}


def group_key(cgroup: bytes | None) -> GroupKey | None:
    """The container of a cgroup path, else its unit; None outside both or unknown."""
    if cgroup is None:
        return None
    if cgroup in _group_keys:
        return _group_keys[cgroup]
    container = container_id_of(cgroup)
    unit = unit_of(cgroup) if container is None else None
    key = ("container", container) if container is not None else ("unit", unit) if unit is not None else None
    return remember(_group_keys, cgroup, key)


def _append_capped(rec: Process, items: Sequence[T], item: T) -> list[T]:
    """`items` with `item` added, for the caller to store back: the shared ()
    becomes a list at the first entry; a list full at ITEMS_MAX stays as it
    is, and what it could not keep is counted in `rec.omitted`."""
    if type(items) is not list:
        return [*items, item]
    if len(items) < ITEMS_MAX:
        items.append(item)
    else:
        rec.omitted += 1
    return items


class ProcessTable:
    """The live table of processes, fed as a Sink (write, lost, status, close)."""

    shows_status = False

    def __init__(
        self,
        keep_finished: int = KEEP_FINISHED,
        loss_window_ns: int = LOSS_WINDOW_NS,
        cgroups: CgroupTable | None = None,
        counting: bool = True,
    ) -> None:
        """`cgroups`: the session's table, kept true by its pipeline step; without
        one (a table fed events directly) the table keeps one of its own.
        `counting`: whether to keep the aggregates (the summary's and the
        report's totals). The live view shows lives, not totals, and the
        counting was a fifth of what its table cost an event; without it the
        aggregates stay empty and every life is kept as it would be."""
        self.keep_finished = keep_finished
        self.counting = counting
        self.loss_window_ns = loss_window_ns
        self.aggregates = Aggregates()
        self.lost_by_class = dict.fromkeys(EVENT_CLASSES, 0)
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self._serial = 0
        self._live: dict[int, Process] = {}  # tgid -> its holder, until reaped
        self._by_serial: dict[int, Process] = {}  # every record kept
        self._finished: deque[Process] = deque()  # in the order they finished
        self.dropped = 0  # finished processes that left the table (beyond keep_finished)
        self._last_finished: dict[int, Process] = {}  # tgid -> its newest finished holder
        self._thread_owner: dict[int, Process] = {}  # tid of a live non-leader thread -> process
        self._loss: tuple[int, int] | None = None  # the latest loss window
        self._path_misses: PendingMisses = {}  # those the next exec of their thread will carry
        self.cgroups = CgroupTable() if cgroups is None else cgroups
        self._feeds_cgroups = cgroups is None
        self._handlers = {
            ForkEvent: self._fork,
            ExecEvent: self._exec,
            ExitEvent: self._exit,
            SignalEvent: self._signal,
            SignalSummaryEvent: self._folded,
            ReapEvent: self._reap,
            CredEvent: self._cred,
            CgroupEvent: self._cgroup,
        }

    # -- the Sink protocol ------------------------------------------------------

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        if self.first_ts is None:
            self.first_ts = events[0].ts_ns
        handlers = self._handlers
        counts = self.aggregates.events if self.counting else None
        last = self.last_ts or 0
        for ev in events:
            handler = handlers.get(type(ev))
            if handler is None:
                continue
            if counts is not None:
                counts[ev.kind] = counts.get(ev.kind, 0) + 1
            handler(ev)
            if ev.ts_ns > last:
                last = ev.ts_ns
        self.last_ts = last

    @property
    def lost_total(self) -> int:
        return sum(self.lost_by_class.values())

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        """Mark every process that may have lost a lifecycle event: alive (or
        unreaped) at any time in the loss window, or born in it (see _add). A
        lost signal leaves every life whole: it is only counted."""
        self.lost_by_class[event_class] = max(total, self.lost_by_class.get(event_class, 0) + new)
        if self.last_ts is None or ts_ns > self.last_ts:
            self.last_ts = ts_ns
        if event_class != LIFECYCLE:
            return
        low = ts_ns - self.loss_window_ns
        self._loss = (low, ts_ns)
        for rec in self._live.values():
            rec.incomplete = True
        for rec in reversed(self._finished):
            gone = rec.reaped_ns if rec.reaped_ns is not None else rec.end_ns
            if gone is not None and gone < low:
                break  # finished in order: the rest ended earlier still
            rec.incomplete = True

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    # -- seeding ----------------------------------------------------------------

    def seed(self, snapshot: list[ProcInfo]) -> None:
        """Add the processes that existed before tracing, with their parents,
        command lines and (approximate) start times."""
        added = []
        for info in snapshot:
            if info.pid in self._live:
                continue  # already known from an event: that is better evidence
            rec = self._new(info.pid, info.start_ns, False, info.ppid, info.comm)
            rec.uid = info.uid
            rec.pre_existing = True
            rec.inherited_argv = info.argv
            rec.live_threads = rec.max_threads = rec.threads_created = max(info.threads, 1)
            # From /proc, where the snapshot reads contexts (ProcInfo.context)
            rec.context = getattr(info, "context", None)
            if rec.context is not None:
                rec.creds = rec.context.creds
            self._add(rec)
            added.append(rec)
        for rec in added:
            parent = self._live.get(rec.ppid)
            if parent is not None and parent is not rec:
                rec.origin_serial = rec.parent_serial = parent.serial
                self._link_child(parent, rec)

    # -- queries ----------------------------------------------------------------

    def processes(self) -> list[Process]:
        """Every process kept, in order of start."""
        return sorted(self._by_serial.values(), key=lambda r: (r.start_ns, r.serial))

    def find(self, pid: int) -> list[Process]:
        """The processes kept that held `pid`, oldest first (more than one after reuse)."""
        return sorted((r for r in self._by_serial.values() if r.tgid == pid), key=lambda r: (r.start_ns, r.serial))

    def get(self, serial: int | None) -> Process | None:
        return self._by_serial.get(serial) if serial is not None else None

    def live(self) -> list[Process]:
        """The processes not yet reaped (running, or zombies)."""
        return list(self._live.values())

    def finished_since(self, since_ns: int, limit: int) -> list[Process]:
        """The processes reaped (or retired) at or after `since_ns`, newest first,
        at most `limit`: a live view keeps them in sight for a while after they end."""
        recent: list[Process] = []
        for rec in reversed(self._finished):
            gone = rec.reaped_ns if rec.reaped_ns is not None else rec.end_ns
            if gone is None or gone < since_ns or len(recent) >= limit:
                break
            recent.append(rec)
        return recent

    def children_index(self) -> dict[int, list[Process]]:
        """serial -> the kept processes born to it, by start."""
        index: dict[int, list[Process]] = {}
        for rec in self.processes():
            if rec.origin_serial is not None and rec.origin_serial in self._by_serial:
                index.setdefault(rec.origin_serial, []).append(rec)
        return index

    def roots(self) -> list[Process]:
        """The kept processes whose parent is not kept: the tops of the tree."""
        return [r for r in self.processes() if r.origin_serial is None or r.origin_serial not in self._by_serial]

    def command_roots(self, command_pid: int) -> list[int]:
        """Where the views of a `-- COMMAND` session start: the command's own
        process when the table has it; else, when a filter left it out (`-c cc1
        -- make`), the traced processes whose parent the table lacks."""
        if any(not rec.pre_existing for rec in self.find(command_pid)):
            return [command_pid]
        tops = sorted({rec.tgid for rec in self.roots() if not rec.pre_existing})
        return tops or [command_pid]

    def subtree(self, roots: Iterable[int]) -> list[Process]:
        """The processes with pid in `roots` and all their descendants, by start."""
        wanted = set(roots)
        index = self.children_index()
        out: list[Process] = []
        stack = [r for r in self.processes() if r.tgid in wanted]
        seen: set[int] = set()
        while stack:
            rec = stack.pop()
            if rec.serial in seen:
                continue
            seen.add(rec.serial)
            out.append(rec)
            stack.extend(index.get(rec.serial, ()))
        out.sort(key=lambda r: (r.start_ns, r.serial))
        return out

    def session_start(self) -> int:
        """The session's start: its first event, or the start of a process forked
        during the session when earlier (the kernel stamps a child's start just
        before the fork event, which may be the first event). What the Chrome
        trace's and the report's times count from."""
        forked = [p.start_ns for p in self._by_serial.values() if p.forked_ns is not None and p.start_ns]
        if self.first_ts is not None:
            return min([self.first_ts, *forked])
        return min((p.start_ns for p in self._by_serial.values() if p.start_ns), default=0)

    def tree_order(self, roots: Iterable[int] | None = None) -> list[Process]:
        """The processes in depth-first order of the tree by birth, children by
        start: the subtrees of the pids in `roots`, or every process kept (those
        the walk from the roots cannot reach, had parent links ever formed a
        loop, come last). The order of the Chrome trace's tracks and the report's rows."""
        everything = self.processes()
        if roots:
            wanted = set(roots)
            tops = [p for p in everything if p.tgid in wanted]
        else:
            tops = self.roots() + everything
        index = self.children_index()
        order: list[Process] = []
        seen: set[int] = set()
        stack = list(reversed(tops))
        while stack:  # not recursive: a chain of forks may be thousands deep
            rec = stack.pop()
            if rec.serial in seen:
                continue
            seen.add(rec.serial)
            order.append(rec)
            stack.extend(reversed(index.get(rec.serial, ())))
        return order

    def command_counts(self) -> dict[bytes, CommandCount]:
        """Processes per command: those counted so far plus those still alive."""
        counts = {
            comm: CommandCount(c.processes, c.ok, c.failed, c.unknown) for comm, c in self.aggregates.commands.items()
        }
        for rec in self._live.values():
            if not rec.counted and rec.seen:
                entry = counts.setdefault(rec.comm, CommandCount())
                entry.processes += 1
                entry.running += 1
        return counts

    def cgroup_of(self, rec: Process) -> bytes | None:
        """The cgroup path a process ran in last, where known."""
        if rec.cgroup_id:
            path = self.cgroups.path_of(rec.cgroup_id)
            if path is not None:
                return path
        return None if rec.context is None else rec.context.cgroup

    def group_of(self, rec: Process) -> GroupKey | None:
        return group_key(self.cgroup_of(rec))

    def group_counts(self) -> dict[GroupKey | None, CommandCount]:
        """Processes by container or unit: those counted so far plus those still alive."""
        counts = {
            key: CommandCount(c.processes, c.ok, c.failed, c.unknown) for key, c in self.aggregates.groups.items()
        }
        for rec in self._live.values():
            if not rec.counted and rec.seen:
                entry = counts.setdefault(self.group_of(rec), CommandCount())
                entry.processes += 1
                entry.running += 1
        return counts

    def __len__(self) -> int:
        return len(self._by_serial)

    # -- records ----------------------------------------------------------------

    def _new(self, tgid: int, start_ns: int, exact: bool, ppid: int, comm: bytes) -> Process:
        self._serial += 1
        rec = Process(self._serial, tgid, start_ns, exact, ppid, ppid, comm)
        rec.comms = [(start_ns, comm)]
        return rec

    def _add(self, rec: Process) -> None:
        self._live[rec.tgid] = rec
        self._by_serial[rec.serial] = rec
        loss = self._loss
        if loss is not None and loss[0] <= rec.start_ns <= loss[1]:
            rec.incomplete = True  # born in a loss window: some of its events may be gone

    def _link_child(self, parent: Process, child: Process) -> None:
        parent.children_count += 1
        parent.children = _append_capped(parent, parent.children, child.tgid)
        if parent.end_ns is None and child.reaped_ns is None:
            if parent.live_children is None:
                parent.live_children = set()
            parent.live_children.add(child.serial)

    def _retire(self, rec: Process) -> None:
        """A new process holds `rec`'s pid: `rec` was reaped (or its exit and reap
        lost) unseen. Its end stays unknown rather than invented."""
        rec.retired = True
        self._finish(rec)

    def _finish(self, rec: Process) -> None:
        """Take a reaped (or retired) process out of the live table."""
        if self._live.get(rec.tgid) is rec:
            del self._live[rec.tgid]
        if rec.tids is not None:
            self._drop_threads(rec)
        parent = self._by_serial.get(rec.parent_serial) if rec.parent_serial is not None else None
        if parent is not None and parent.live_children:
            parent.live_children.discard(rec.serial)
        rec.live_children = None
        if not rec.counted and rec.seen and self.counting:
            self.aggregates.process_ended(rec, self.group_of(rec))
        self._finished.append(rec)
        self._last_finished[rec.tgid] = rec
        while len(self._finished) > self.keep_finished:
            old = self._finished.popleft()
            del self._by_serial[old.serial]
            self.dropped += 1
            if self._last_finished.get(old.tgid) is old:
                del self._last_finished[old.tgid]

    def _drop_threads(self, rec: Process) -> None:
        if rec.tids:
            owner = self._thread_owner
            for tid in rec.tids:
                if owner.get(tid) is rec:
                    del owner[tid]
        rec.tids = None

    def _subject(self, ev: Event) -> Process:
        """The process an event's own task belongs to; created if unknown."""
        rec = self._resolve(ev, create=True)
        assert rec is not None
        return rec

    def _actor(self, ev: Event) -> Process | None:
        """The process whose task acted on another (reaped it, signalled it), if
        known: an unknown actor is outside what is traced (in `-- COMMAND` mode,
        proctrace itself reaps the command), so no record is made for it."""
        return self._resolve(ev, create=False)

    def _resolve(self, ev: Event, create: bool) -> Process | None:
        tgid, start = ev.tgid, ev.start_ns
        rec = self._live.get(tgid)
        if rec is not None and start and (rec.start_ns != start or not rec.start_exact):
            if not rec.start_exact and self._starts_as(rec, start):
                rec.start_ns = start
                rec.start_exact = True
            elif rec.start_ns != start:
                late = self._last_finished.get(tgid)
                if late is not None and late.start_ns == start:
                    return late  # a late event of the previous holder
                # A new process holds the pid: the previous holder's reap (and this
                # one's fork) happened unseen.
                self._retire(rec)
                rec = None
        elif rec is None:
            late = self._last_finished.get(tgid)
            if late is not None and (late.start_ns == start or not start):
                return late
        if rec is None:
            if not create:
                return None
            rec = self._new(tgid, start, True, ev.ppid, ev.comm)
            rec.uid = ev.uid
            rec.first_seen_ns = ev.ts_ns
            parent = self._live.get(ev.ppid)
            if parent is not None:
                rec.origin_serial = rec.parent_serial = parent.serial
                self._link_child(parent, rec)
            self._add(rec)
        rec.seen = True
        if ev.cgroup_id:
            rec.cgroup_id = ev.cgroup_id  # a process can be moved between cgroups
        if ev.ppid != rec.ppid and ev.ppid:
            self._adopt(rec, ev.ppid, ev.ts_ns)
        if ev.pid == tgid and ev.comm != rec.comm:
            rec.comm = ev.comm  # prctl(PR_SET_NAME) on the main thread, or an exec
            rec.comms = _append_capped(rec, rec.comms, (ev.ts_ns, ev.comm))
        return rec

    def _starts_as(self, rec: Process, start: int) -> bool:
        """Whether `start`, an event's exact start time, is that of inexact `rec`."""
        if rec.forked_ns is not None:
            return rec.forked_ns - FORK_START_SLACK_NS <= start <= rec.forked_ns
        if rec.pre_existing:
            started_before_tracing = self.first_ts is not None and start < self.first_ts
            return started_before_tracing or start <= rec.start_ns + SNAPSHOT_START_SLACK_NS
        return False

    def _adopt(self, rec: Process, new_ppid: int, seen_ns: int) -> None:
        old = self._by_serial.get(rec.parent_serial) if rec.parent_serial is not None else None
        when = rec.orphaned_ns  # None when the old parent's exit was not seen
        adopter = self._live.get(new_ppid)
        adoption = Adoption(rec.ppid, new_ppid, when, seen_ns, adopter.serial if adopter else None)
        rec.adoptions = [*rec.adoptions, adoption]  # few: not capped
        if old is not None and old.live_children:
            old.live_children.discard(rec.serial)
        rec.ppid = new_ppid
        rec.orphaned_ns = None
        rec.parent_serial = adopter.serial if adopter is not None else None
        if adopter is not None and adopter.end_ns is None:
            if adopter.live_children is None:
                adopter.live_children = set()
            adopter.live_children.add(rec.serial)

    # -- events -----------------------------------------------------------------

    def _fork(self, ev: ForkEvent) -> None:
        forker = self._subject(ev)
        ts = ev.ts_ns
        if ev.clone_flags & CLONE_THREAD:  # ev.thread, without a property's call for every fork
            forker.threads_created += 1
            forker.live_threads += 1
            if forker.live_threads > forker.max_threads:
                forker.max_threads = forker.live_threads
            if forker.tids is None:
                forker.tids = set()
            forker.tids.add(ev.child_pid)
            self._thread_owner[ev.child_pid] = forker
            return
        # CLONE_PARENT makes the child a sibling: its parent is the forker's parent.
        parent = forker if ev.child_ppid == forker.tgid else self._live.get(ev.child_ppid)
        child = self._live.get(ev.child_tgid)
        if child is not None and not self._is_fork_of(child, ts):
            self._retire(child)  # the previous holder of the pid was reaped unseen
            child = None
        if child is None:
            late = self._last_finished.get(ev.child_tgid)
            # (a pid's previous holder that was forked is never this fork's child)
            if late is not None and late.forked_ns is None and self._is_fork_of(late, ts):
                child = late
        if child is None:
            child = self._new(ev.child_tgid, ts, False, ev.child_ppid, ev.comm)
            child.uid = ev.uid
            self._add(child)
        # else: the child's own events came first (a window was exceeded); this
        # fork is placed on the record they made.
        child.forked_ns = ts
        child.forked_by = forker.tgid
        child.forked_by_serial = forker.serial
        child.original_ppid = ev.child_ppid
        child.inherited_argv = forker.argv
        if child.creds is None:  # unless its own events came first: a fork copies the credentials
            child.creds = forker.creds
        if not child.cgroup_id:
            child.cgroup_id = ev.cgroup_id  # and the cgroup (the fork event is the parent's)
        child.seen = True
        if parent is not None:
            child.origin_serial = parent.serial
            if child.parent_serial is None and child.ppid == parent.tgid:
                child.parent_serial = parent.serial
            self._link_child(parent, child)

    def _is_fork_of(self, rec: Process, fork_ts: int) -> bool:
        """Whether `rec` was made from a child's own events before its fork arrived."""
        return (
            rec.forked_ns is None
            and not rec.pre_existing
            and rec.start_exact
            and fork_ts - FORK_START_SLACK_NS <= rec.start_ns <= fork_ts
        )

    def _exec(self, ev: ExecEvent) -> None:
        rec = self._subject(ev)
        record = ExecRecord(
            ev.ts_ns,
            ev.filename,
            ev.argv,
            ev.errno,
            ev.argv_truncated,
            ev.filename_truncated,
            ev.argv_unreadable,
            ev.old_pid if ev.old_pid != ev.pid else 0,
            ev.path_search,
            context=ev.context,
        )
        if ev.errno:
            rec.failed_execs = _append_capped(rec, rec.failed_execs, record)
            if self.counting:
                self.aggregates.exec_failed(record)
            if ev.path_search:
                rec.path_misses += 1
                count_path_miss(self._path_misses, ev)
            return
        if self._path_misses:
            record.path_misses = take_path_misses(self._path_misses, ev)
        rec.execs = _append_capped(rec, rec.execs, record)
        ctx = ev.context
        if ctx is not None:
            rec.context = ctx
            if ctx.creds is not None:
                rec.creds = ctx.creds
            if self._feeds_cgroups and ctx.cgroup is not None:
                self.cgroups.learn(ev.cgroup_id, ctx.cgroup)
        if record.old_pid:
            # A non-leader thread exec'd: the kernel killed every other thread and
            # gave it the leader's pid. One thread is left.
            self._drop_threads(rec)
            rec.live_threads = 1

    def _exit(self, ev: ExitEvent) -> None:
        rec = self._subject(ev)
        if rec.end_ns is not None:
            return  # a duplicate or a stray thread exit after the process ended
        if not ev.process_exit:
            if ev.pid == rec.tgid:
                rec.leader_exit_ns = ev.ts_ns  # the others go on; the process lives
            elif rec.tids is not None:
                rec.tids.discard(ev.pid)
                if self._thread_owner.get(ev.pid) is rec:
                    del self._thread_owner[ev.pid]
            rec.live_threads = max(rec.live_threads - 1, 1)
            return
        rec.end_ns = ev.ts_ns
        rec.status = ev.status
        rec.usage = ev.usage
        rec.oom_killed, rec.oom_memcg = ev.oom_killed, ev.oom_memcg
        rec.killed_by_pid, rec.killed_by_comm = ev.killed_by_pid, ev.killed_by_comm
        rec.live_threads = 0
        if rec.tids is not None:
            self._drop_threads(rec)
        if rec.live_children:
            # The kernel reparents them right after this exit; who adopts them is
            # learnt from their later events.
            for serial in rec.live_children:
                child = self._by_serial.get(serial)
                if child is not None and child.reaped_ns is None:
                    child.orphaned_ns = ev.ts_ns
            rec.live_children = None
        if not rec.counted and self.counting:
            self.aggregates.process_ended(rec, self.group_of(rec))

    def _released(self, ev: ReapEvent) -> None:
        """A kernel reap: the process was released at its exit, with no wait()
        (its parent ignores SIGCHLD or set SA_NOCLDWAIT). It was never a zombie
        to anyone; the event comes when its task is freed."""
        child = self._live.get(ev.reaped_pid)
        if child is None or child.end_ns is None:
            return  # not traced, or its exit not seen: nothing to release
        child.seen = True
        child.autoreaped = True
        child.reaped_ns = ev.ts_ns
        child.reaper = None
        child.reaper_serial = None
        self._finish(child)

    def _signal(self, ev: SignalEvent) -> None:
        if ev.stage == SIGNAL_GENERATE:
            sender = ev.sender_pid
            # Only with a sender is the event's task the sender: a signal raised in
            # interrupt context is stamped with whatever task was running.
            sending = self._actor(ev) if sender is not None and ev.pid else None
            if self.counting:
                self.aggregates.signal_sent(ev.signo, from_kernel=sender is None)
            target = self._thread_owner.get(ev.target_pid) or self._live.get(ev.target_pid)
            if target is None:
                return  # outside what is traced: no record is invented for it
            record = SignalRecord(
                ev.ts_ns, ev.signo, SIGNAL_GENERATE, sender, sending.serial if sending else None, ev.result
            )
            target.signals = _append_capped(target, target.signals, record)
            if ev.signo == SIGCONT and target.stops and target.stops[-1].continued_ns is None:
                target.stops[-1].continued_ns = ev.ts_ns  # SIGCONT resumes at generation
            return
        if ev.stage != SIGNAL_DELIVER:
            return
        rec = self._subject(ev)
        rec.signals = _append_capped(
            rec,
            rec.signals,
            SignalRecord(ev.ts_ns, ev.signo, SIGNAL_DELIVER, None, None, 0, ev.handler, ev.group_exit_signo),
        )
        stopping = ev.signo in STOP_SIGNALS and ev.handler == _HANDLER_DEFAULT
        if stopping and (not rec.stops or rec.stops[-1].continued_ns is not None):
            rec.stops = _append_capped(rec, rec.stops, StopRecord(ev.ts_ns, ev.signo))

    def _folded(self, ev: SignalSummaryEvent) -> None:
        """Counted for the summary, and on the process whose task the signals were
        counted in (generate: the sender; deliver: the receiver), if it is traced."""
        if self.counting:
            self.aggregates.signals_folded(ev)
        rec = self._actor(ev)
        if rec is None:
            return
        if rec.folded is None:
            rec.folded = {}
        key = (ev.reason, ev.stage, ev.signo, ev.target_pid)
        known = rec.folded.get(key)
        if known is not None:
            known.count += ev.count
            known.first_ns = min(known.first_ns, ev.first_ns)
            known.last_ns = max(known.last_ns, ev.last_ns)
        elif len(rec.folded) < ITEMS_MAX:
            rec.folded[key] = FoldedRecord(*key, ev.target_comm, ev.count, ev.first_ns, ev.last_ns)
        else:
            rec.omitted += 1

    def _cred(self, ev: CredEvent) -> None:
        rec = self._subject(ev)
        rec.cred_changes = _append_capped(rec, rec.cred_changes, ev)
        if ev.after is not None:
            rec.creds = ev.after

    def _cgroup(self, ev: CgroupEvent) -> None:
        if self._feeds_cgroups:  # a removed cgroup's path still names it for its past processes
            self.cgroups.apply(ev.action, ev.target_id, ev.path)

    def _reap(self, ev: ReapEvent) -> None:
        if ev.autoreaped:
            self._released(ev)
            return
        reaper = self._actor(ev)
        reaper_serial = reaper.serial if reaper is not None else None
        child = self._live.get(ev.reaped_pid)
        late = False
        if child is None:
            retired = self._last_finished.get(ev.reaped_pid)
            if retired is not None and retired.autoreaped:
                # The kernel's free came before the waiter's own reap (the
                # waiter was held up past an RCU grace period): wait() it was.
                child, late = retired, True
                child.autoreaped = False
            elif retired is not None and retired.retired and retired.end_ns is not None:
                child, late = retired, True  # the reap arrived after a new holder of its pid
                child.retired = False
            else:
                # Never seen alive: a process from before tracing that the snapshot
                # missed. Its start is unknown (0); the reap tells how it ended.
                child = self._new(ev.reaped_pid, 0, False, ev.tgid, b"")
                child.first_seen_ns = ev.ts_ns
                child.origin_serial = child.parent_serial = reaper_serial
                self._add(child)
        child.seen = True
        if child.ppid != ev.tgid:
            self._adopt(child, ev.tgid, ev.ts_ns)
        if child.status is None:
            child.status = ev.status  # its exit was not seen; the reaper saw this
        child.reaped_ns = ev.ts_ns
        child.reaper = ev.tgid
        child.reaper_serial = reaper_serial
        if not late:
            self._finish(child)
