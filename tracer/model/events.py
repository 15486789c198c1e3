"""The event records: what one fork, exec, exit, signal or reap says.

Strings from the kernel (command names, file names, arguments) stay `bytes`
here: they are whatever a process chose, not necessarily UTF-8. Renderers and
the JSON encoder decide how to show them; as_text and as_bytes are the one
lossless mapping between such bytes and `str` that every stored form uses.
"""

from __future__ import annotations

import errno as errno_mod
import signal as signal_mod
from dataclasses import dataclass, field

from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.memo import remember
from proctrace.model.text import as_bytes, as_text  # noqa: F401  (re-exported: the model's public names)

CLONE_VM = 0x00000100
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000

SIGNAL_GENERATE = 1
SIGNAL_DELIVER = 2

# The two classes of event, each with its own kernel buffer and loss count: a
# flood of signals can only ever cost signals.
LIFECYCLE = "lifecycle"  # fork, exec, exit, reap
SIGNALS = "signal"
EVENT_CLASSES = (LIFECYCLE, SIGNALS)

# Why the kernel counted signals instead of sending them (SignalSummaryEvent.reason)
FOLD_PTRACE = 1  # SIGCHLDs that told a tracer its tracee stopped (strace, gdb, rr)
FOLD_RATE = 2  # beyond the rate limit of one sender, target and signal
FOLD_REASONS = {FOLD_PTRACE: "ptrace_stop", FOLD_RATE: "rate_limit"}

# signal_generate's result (include/trace/events/signal.h, enum trace_signal_deliver)
SIGNAL_RESULTS = {0: "delivered", 1: "ignored", 2: "already_pending", 3: "overflow_fail", 4: "lose_info"}

# si_codes for which the task generating the signal is its sender (include/uapi/asm-generic/siginfo.h)
SI_USER, SI_QUEUE, SI_TKILL = 0, -1, -6
_SENDER_CODES = frozenset({SI_USER, SI_QUEUE, SI_TKILL})


_SIGNAL_NAMES: dict[int, str] = {}
for _name in dir(signal_mod):
    if _name.startswith("SIG") and not _name.startswith("SIG_") and _name not in ("SIGIOT", "SIGPOLL", "SIGCLD"):
        _SIGNAL_NAMES.setdefault(int(getattr(signal_mod, _name)), _name)


def signal_name(signo: int) -> str:
    """SIGTERM for 15; SIGRTMIN+3 for real-time signals; SIG<n> for the unknown."""
    name = _SIGNAL_NAMES.get(signo)
    if name:
        return name
    rtmin, rtmax = int(signal_mod.SIGRTMIN), int(signal_mod.SIGRTMAX)
    if rtmin < signo < rtmax:
        return f"SIGRTMIN+{signo - rtmin}"
    return f"SIG{signo}"


def signal_number(name: str) -> int:
    """The inverse of signal_name."""
    if type(name) is not str:
        raise TypeError(f"a signal name is a string, not {type(name).__name__}")
    for signo, known in _SIGNAL_NAMES.items():
        if known == name:
            return signo
    if name.startswith("SIGRTMIN+"):
        return int(signal_mod.SIGRTMIN) + int(name[9:])
    if name.startswith("SIG") and name[3:].isdigit():
        return int(name[3:])
    raise ValueError(f"unknown signal name {name!r}")


def errno_name(err: int) -> str:
    return errno_mod.errorcode.get(err, f"E{err}")


def errno_number(name: str) -> int:
    """The inverse of errno_name."""
    if type(name) is not str:
        raise TypeError(f"an errno name is a string, not {type(name).__name__}")
    value = getattr(errno_mod, name, None)
    if isinstance(value, int):
        return value
    if name.startswith("E") and name[1:].isdigit():
        return int(name[1:])
    raise ValueError(f"unknown errno name {name!r}")


@dataclass(frozen=True, slots=True)
class WaitStatus:
    """A decoded wait(2) status: exited with a code, or killed by a signal."""

    raw: int

    @property
    def signo(self) -> int:
        return self.raw & 0x7F

    @property
    def exit_code(self) -> int | None:
        return (self.raw >> 8) & 0xFF if self.signo == 0 else None

    @property
    def signal(self) -> str | None:
        return signal_name(self.signo) if self.signo else None

    @property
    def core_dumped(self) -> bool:
        return bool(self.raw & 0x80) and self.signo != 0

    def shell_code(self) -> int:
        """The code a shell reports: the exit code, or 128 + the signal number."""
        return self.exit_code if self.exit_code is not None else 128 + self.signo

    def describe(self) -> str:
        if self.exit_code is not None:
            return f"exit {self.exit_code}"
        text = f"killed by {self.signal}"
        return text + " (core dumped)" if self.core_dumped else text


_wait_statuses: dict[int, WaitStatus] = {}


def wait_status(raw: int) -> WaitStatus:
    """The WaitStatus of `raw`, shared: it is frozen, and a session holds few
    distinct statuses, so decoding reuses one object per value."""
    return _wait_statuses.get(raw) or remember(_wait_statuses, raw, WaitStatus(raw))


@dataclass(slots=True)
class Event:
    """Fields every event has. `pid` is the task (thread) id, `tgid` the process id."""

    ts_ns: int
    pid: int
    tgid: int
    ppid: int
    uid: int
    comm: bytes
    start_ns: int  # the process's start time (monotonic ns): with tgid, its identity
    cpu: int
    # The cgroup v2 id of the task the event came from (the kernfs inode number
    # of its directory in the unified hierarchy); 0 where unknown. Keyword-only,
    # so every positional constructor keeps its shape.
    cgroup_id: int = field(default=0, kw_only=True)

    kind = "event"


@dataclass(slots=True)
class ForkEvent(Event):
    child_pid: int = 0
    child_tgid: int = 0
    child_ppid: int = 0
    clone_flags: int = 0

    kind = "fork"

    @property
    def thread(self) -> bool:
        return bool(self.clone_flags & CLONE_THREAD)


@dataclass(slots=True)
class ExecEvent(Event):
    filename: bytes = b""
    argv: list[bytes] = field(default_factory=list)
    argv_truncated: bool = False
    filename_truncated: bool = False
    argv_unreadable: bool = False
    errno: int = 0  # 0 on success
    old_pid: int = 0  # the thread that called exec
    # A failed exec that was one attempt of a PATH search that then found the
    # file (tracer/model/path_search.py decides it): not a failure to report.
    path_search: bool = False
    # Where and as whom the new image runs (tracer/model/context.py); None for
    # a failed exec, and in recordings made before it was read.
    context: ProcessContext | None = None

    kind = "exec"

    @property
    def failed(self) -> bool:
        return self.errno != 0


@dataclass(slots=True)
class ResourceUsage:
    """What a whole process used, all its threads, as wait4's rusage reports it
    for that process (not its children): read once, at its last thread's exit.
    Not frozen, though never changed: a frozen dataclass takes 0.7 us more to
    make, once per process exit."""

    cpu_user_ns: int
    cpu_sys_ns: int
    max_rss_kb: int
    minflt: int
    majflt: int
    nvcsw: int
    nivcsw: int
    read_bytes: int | None  # storage I/O; None where the kernel keeps no I/O accounting
    write_bytes: int | None

    def to_dict(self) -> dict[str, int | None]:
        """Its JSON fields, as a process exit carries them (README, JSON schema)."""
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ResourceUsage | None:
        """From the record holding it; None for one without (a thread's exit,
        or a recording made before usage was read). Strict about types."""
        if "cpu_user_ns" not in d:
            return None
        values = [d.get(name) for name in USAGE_FIELDS]
        if any(type(v) is not int for v in values[:7]) or any(v is not None and type(v) is not int for v in values[7:]):
            raise ValueError(f"{', '.join(USAGE_FIELDS)} must be integers (the I/O ones may be null)")
        return cls(*values)  # type: ignore[arg-type]


USAGE_FIELDS = (
    "cpu_user_ns", "cpu_sys_ns", "max_rss_kb", "minflt", "majflt", "nvcsw", "nivcsw", "read_bytes", "write_bytes"
)  # fmt: skip


@dataclass(slots=True)
class ExitEvent(Event):
    status: WaitStatus = WaitStatus(0)
    task_exit_code: int = 0
    process_exit: bool = False  # the last task of the process: the process ended
    task_start_ns: int = 0
    usage: ResourceUsage | None = None  # on a process exit, where the kernel read it
    oom_killed: bool = False  # the kernel's OOM killer chose the process
    oom_memcg: bytes | None = None  # the memory cgroup out of memory, as the kernel log said (kernel/kmsg.py)
    # On an exit by a signal that a process sent: that process (None when the
    # kernel sent it: a fault, a timer, the OOM killer; or where unknown).
    killed_by_pid: int | None = None
    killed_by_comm: bytes | None = None

    kind = "exit"

    @property
    def lifetime_ns(self) -> int:
        start = self.start_ns if self.process_exit else self.task_start_ns
        return max(0, self.ts_ns - start)


@dataclass(slots=True)
class SignalEvent(Event):
    stage: int = SIGNAL_GENERATE
    signo: int = 0
    code: int = 0
    target_pid: int = 0
    target_comm: bytes = b""
    result: int = 0
    group: bool = False
    handler: int = 0
    group_exit_signo: int = 0

    kind = "signal"

    @property
    def sender_pid(self) -> int | None:
        """The sending process, known when a task sent it (kill, tgkill, sigqueue)
        or for SIGCHLD from a child; kernel-made signals (timers, faults) have
        no sending task. The sending thread is the event's `pid`."""
        if self.stage == SIGNAL_GENERATE and (self.code in _SENDER_CODES or self.signo == signal_mod.SIGCHLD):
            return self.tgid
        return None

    @property
    def signal(self) -> str:
        return signal_name(self.signo)


@dataclass(slots=True)
class SignalSummaryEvent(Event):
    """Signals the kernel counted instead of sending them one by one, over one
    reporting period: the ptrace stops of one tracee reported to its tracer, or
    the signals of one sender, target and number beyond the rate limit.

    The common fields are those of the first signal counted (generate: its
    sender; deliver: its receiver); `ts_ns` is when the count was read, so the
    summary comes after the signals it counts."""

    reason: int = FOLD_PTRACE
    stage: int = SIGNAL_GENERATE
    signo: int = 0
    target_pid: int = 0  # the target task (for ptrace stops, the tracer)
    target_comm: bytes = b""
    count: int = 0
    first_ns: int = 0  # the first and last signal counted
    last_ns: int = 0

    kind = "signal"

    @property
    def signal(self) -> str:
        return signal_name(self.signo)

    @property
    def sender_pid(self) -> int | None:
        """The sending process, for signals counted where they were generated."""
        return self.tgid if self.stage == SIGNAL_GENERATE else None


@dataclass(slots=True)
class ReapEvent(Event):
    reaped_pid: int = 0
    status: WaitStatus = WaitStatus(0)
    # Released by the kernel, not collected by wait(): its parent ignores
    # SIGCHLD or set SA_NOCLDWAIT. The event's task fields are then zeros.
    autoreaped: bool = False

    kind = "reap"


@dataclass(slots=True)
class CredEvent(Event):
    """A task changed its credentials after exec: a set*id, setgroups or
    capset call that succeeded and changed something."""

    syscall: str = ""  # "setuid", "setresgid", "capset", ...
    before: Credentials | None = None
    after: Credentials | None = None
    # Supplementary groups, up to CRED_GROUPS_MAX of each; the *_count say how many there were.
    groups_before: tuple[int, ...] = ()
    groups_after: tuple[int, ...] = ()
    groups_before_count: int = 0
    groups_after_count: int = 0

    kind = "cred"

    @property
    def privilege_gain(self) -> bool:
        """A capability gained, or root regained (a saved set-user-ID of 0, say)."""
        return self.before is not None and self.after is not None and self.after.gained_over(self.before)


CRED_GROUPS_MAX = 16

CGROUP_MKDIR, CGROUP_RMDIR, CGROUP_RENAME = "mkdir", "rmdir", "rename"


@dataclass(slots=True)
class CgroupEvent(Event):
    """A cgroup of the unified (v2) hierarchy was made, removed or renamed:
    the common fields are the task that did it. These events keep the map from
    cgroup ids to paths true for cgroups that live only briefly (a container's)."""

    action: str = CGROUP_MKDIR
    target_id: int = 0  # the id of the cgroup made, removed or renamed
    path: bytes = b""  # its path (after a rename, the new one)

    kind = "cgroup"


EVENT_KINDS = ("fork", "exec", "exit", "signal", "reap", "cred", "cgroup")


@dataclass(frozen=True, slots=True)
class LostRecord:
    """A report of events of one class (EVENT_CLASSES) that the kernel could
    not hand over: `count` since the last report, `total` of that class in all."""

    ts_ns: int
    count: int
    total: int
    event_class: str = LIFECYCLE
