"""The flood: the storm run inside a signal flood, the workload of the bench's
flood section (proctrace.bench.flood_section).

flood.c, shipped with this package and compiled into the bench's temporary
directory, starts three things at once in one process tree: a kill loop
sending SIGUSR1 to a target that has a handler for it, as fast as kill(2)
goes; a loop of getppid(2) under ``strace -f -o /dev/null`` (every syscall
entry and exit a ptrace stop, each a SIGCHLD to strace); and the bench's C
storm (proctrace.bench.storm), whose events are counted exactly. Each part
reports on stdout; this module runs it and reads the reports back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proctrace.bench import BenchError
from proctrace.bench.storm import Storm, StormResult, compile_c, run_workload

FLOOD_COMM = "ptbench-flood"


@dataclass(frozen=True)
class KillReport:
    """What the kill loop did: kill() calls that succeeded, over how long, from and to whom."""

    sent: int
    seconds: float
    sender: int
    target: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SyscallReport:
    """What the loop under strace did: getppid() calls, each two ptrace stops at least."""

    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class FloodResult:
    storm: StormResult
    kill: KillReport
    syscalls: SyscallReport | None  # None without strace


def parse_kill_line(text: str) -> KillReport:
    """The kill loop's "sent N seconds T sender P target Q" line, anywhere in the flood's stdout."""
    m = re.search(r"^sent (\d+) seconds ([\d.]+) sender (\d+) target (\d+)$", text, re.MULTILINE)
    if not m:
        raise BenchError(f"the kill loop did not report what it sent: {text.strip()[-300:]!r}")
    return KillReport(int(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4)))


def parse_syscalls_line(text: str) -> SyscallReport | None:
    """The syscall loop's "syscalls N seconds T" line; None when there is none (no strace)."""
    m = re.search(r"^syscalls (\d+) seconds ([\d.]+)$", text, re.MULTILINE)
    return SyscallReport(int(m.group(1)), float(m.group(2))) if m else None


class Flood:
    """The flood around `storm`, built in the storm's directory, with `strace`
    (a path, or None to leave that part out). Without a C compiler there is no
    flood (a Python kill loop would be a far weaker one): `available` is False
    and `why_not` says why."""

    def __init__(self, storm: Storm, strace: str | None) -> None:
        self.storm = storm
        self.strace = strace  # its path; None: the flood runs without the part under strace
        self.binary = storm.workdir / FLOOD_COMM
        self.why_not: str | None = None
        if storm.kind != "C":
            self.why_not = "n/a (the flood runs the C storm; no C compiler found)"
        elif not compile_c("flood.c", storm.workdir, self.binary):
            self.why_not = "n/a (no C compiler found)"

    @property
    def available(self) -> bool:
        return self.why_not is None

    def argv(self, seconds: float) -> list[str]:
        return [str(self.binary), f"{seconds}", self.strace or "-", *self.storm.argv(seconds)]

    def shown(self, seconds: float) -> str:
        """The flood's command line as a reader can repeat it: without the temporary directory."""
        workdir = f"{self.storm.workdir}/"
        return " ".join(arg.replace(workdir, "") for arg in self.argv(seconds))

    def collect(self, stdout: str) -> FloodResult:
        """Each part's report, and the pids the storm's spawners wrote."""
        result = FloodResult(self.storm.collect(stdout), parse_kill_line(stdout), parse_syscalls_line(stdout))
        if self.strace and result.syscalls is None:
            raise BenchError(f"the loop under strace did not report: {stdout.strip()[-300:]!r}")
        return result

    def run(self, seconds: float) -> FloodResult:
        """The flood untraced, in a session of its own as under `proctrace -- FLOOD`
        (TracerProcess starts proctrace so): with autogroup scheduling each
        session is a group that shares the CPUs with the neighbours' as one, so
        a flood in the bench's own session would get another share of a busy
        machine than the traced one, either way (measured here, minutes apart:
        its storm slower in a session of its own in 3 of 4 pairs, then faster in 7 of 8)."""
        return self.collect(run_workload(self.argv(seconds), seconds, "the flood", new_session=True))
