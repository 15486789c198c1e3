"""The kernel log's word on OOM kills: which memory cgroup was out of memory.

oom:mark_victim names the victim but not the memory cgroup whose limit was
hit, and no tracepoint on that path carries it (the OOM control block lives
on the killer's stack). The kernel says it in the log, in the one-line
summary it prints before killing (mm/oom_kill.c, dump_oom_victim):

    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,
    oom_memcg=/build,task_memcg=/build/cc1,task=cc1,pid=4242,uid=0

`oom_memcg` is there only when a memory cgroup was out of memory (a machine-
wide OOM has none), and the summary is rate-limited with the rest of the OOM
report, so a storm of kills leaves some without it: the field is then null.

/dev/kmsg gives one record per read, "PRIORITY,SEQ,TIME_US,FLAGS;MESSAGE"
with bytes outside printable ASCII written as \\xNN. It is opened at the end,
so only records written during the session are read.
"""

from __future__ import annotations

import errno as errno_mod
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from proctrace.model.events import Event, ExitEvent

KMSG_PATH = "/dev/kmsg"
RECORD_MAX = 8192  # the kernel's record limit is under this (a shorter read gets EINVAL)
KILLS_KEPT = 1024  # OOM kills remembered by pid until their exit takes them
# A kill whose exit the session never sees (filtered out, or lost) is
# forgotten after this, so the batches stop being looked through for it.
KILL_KEPT_S = 30.0

# The summary's tail. Cgroup paths and task names may hold commas, so it is
# anchored at the end, where the numeric fields are, rather than split.
_OOM_SUMMARY = re.compile(
    rb"oom-kill:constraint=(?P<constraint>[A-Z_]+),.*?"
    rb"(?:,oom_memcg=(?P<oom_memcg>.*?))?(?:,task_memcg=(?P<task_memcg>.*?))?"
    rb",task=(?P<comm>.*),pid=(?P<pid>\d+),uid=(?P<uid>\d+)$",
)
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True, slots=True)
class OomKill:
    """One OOM kill as the kernel log summarised it."""

    pid: int
    constraint: str  # CONSTRAINT_MEMCG, CONSTRAINT_NONE, CONSTRAINT_CPUSET, ...
    oom_memcg: bytes | None  # the memory cgroup that was out of memory; None: machine-wide
    task_memcg: bytes | None  # the victim's own memory cgroup


def _unescape(raw: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def parse_oom_summary(record: bytes) -> OomKill | None:
    """The OOM kill a /dev/kmsg record's message line reports, or None for any other."""
    _, sep, message = record.partition(b";")
    if not sep or not message.startswith(b"oom-kill:"):
        return None
    m = _OOM_SUMMARY.match(message)
    if m is None:
        return None
    memcg, task_memcg = m.group("oom_memcg"), m.group("task_memcg")
    return OomKill(
        int(m.group("pid")),
        m.group("constraint").decode(),
        None if memcg is None else _unescape(memcg),
        None if task_memcg is None else _unescape(task_memcg),
    )


class KernelLog:
    """The OOM kills the kernel logs while the session runs, by victim pid.

    Unreadable (no /dev/kmsg in a container, or no CAP_SYSLOG), it knows
    nothing, and OOM kills are still reported, without their memory cgroup."""

    def __init__(self, path: str = KMSG_PATH) -> None:
        self._kills: OrderedDict[int, tuple[float, OomKill]] = OrderedDict()  # pid -> (when read, kill)
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            self._fd = None

    @property
    def readable(self) -> bool:
        return self._fd is not None

    def _drain(self) -> None:
        fd = self._fd
        while fd is not None:
            try:
                record = os.read(fd, RECORD_MAX)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno_mod.EPIPE:
                    continue  # records were overwritten before we read them: go on from the oldest left
                self.close()
                return
            if not record:
                return
            # One record per read from /dev/kmsg; its dictionary lines (" KEY=value")
            # follow the message. Split anyway, so that a plain file reads as well.
            for line in record.split(b"\n"):
                kill = parse_oom_summary(line)
                if kill is not None:
                    self._kills.pop(kill.pid, None)
                    self._kills[kill.pid] = (time.monotonic(), kill)
                    if len(self._kills) > KILLS_KEPT:
                        self._kills.popitem(last=False)

    def pending(self) -> bool:
        """Whether an OOM kill was logged that no exit has taken yet."""
        self._drain()
        kills = self._kills
        if kills:
            too_old = time.monotonic() - KILL_KEPT_S
            while kills and next(iter(kills.values()))[0] < too_old:
                kills.popitem(last=False)
        return bool(kills)

    def oom_kill(self, pid: int) -> OomKill | None:
        """What the log said of the OOM kill of `pid`, taken once: the summary
        is written before the kill, so it is there by the time the exit is seen."""
        self._drain()
        entry = self._kills.pop(pid, None)
        return None if entry is None else entry[1]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OomMemcgStep:
    """Live: after `step`, name on each OOM victim's exit the memory cgroup that
    was out of memory, from the kernel log. A batch is looked through only
    while the log holds a kill not yet matched, so a session without OOM kills
    pays one read of /dev/kmsg per batch."""

    def __init__(self, step: Callable[[list[Event]], list[Event]], log: KernelLog) -> None:
        self.step = step
        self.log = log

    def __call__(self, batch: list[Event]) -> list[Event]:
        batch = self.step(batch)
        log = self.log
        if log.readable and log.pending():
            for ev in batch:
                if type(ev) is ExitEvent and ev.oom_killed:
                    kill = log.oom_kill(ev.tgid)
                    if kill is not None:
                        ev.oom_memcg = kill.oom_memcg
        return batch
