"""What a process and the machine use, read from /proc: a tracer's CPU time and
RSS, other sessions' BPF tracers, and the CPU time of processes that are not
ours (a storm measured while the neighbours were busy is repeated)."""

from __future__ import annotations

import os
import re
import resource
import time
from typing import Any

# BPF program types that trace (kprobe, tracepoint, perf_event, raw_tracepoint,
# tracing): another session's tracer of these runs its programs inside our storm.
TRACING_PROG_TYPES = frozenset({2, 5, 7, 17, 26})
MAX_OTHERS_CPU_PCT = 10.0  # a timed run with more of the CPUs busy elsewhere is repeated


def proc_stat_cpu_ticks(stat_text: str) -> int:
    """utime + stime from /proc/<pid>/stat; the comm field may hold spaces and parens."""
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of the whole line


def status_kb(status_text: str, field: str = "VmRSS") -> int | None:
    """A size field of /proc/<pid>/status (VmRSS, VmHWM, ...) in KiB."""
    m = re.search(rf"^{field}:\s+(\d+) kB", status_text, re.MULTILINE)
    return int(m.group(1)) if m else None


def vm_rss_kb(status_text: str) -> int | None:
    return status_kb(status_text, "VmRSS")


def prog_type_of(fdinfo_text: str) -> int | None:
    """The prog_type of a BPF program fd's /proc/<pid>/fdinfo/<fd> text."""
    m = re.search(r"^prog_type:\s+(\d+)", fdinfo_text, re.MULTILINE)
    return int(m.group(1)) if m else None


def cpu_stat_seconds(before: str, after: str, hz: int) -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine between two "cpu ..." lines
    of /proc/stat. Busy is user, nice, system, irq and softirq (guest time is
    already inside user); steal is time the hypervisor gave to someone else."""

    def fields(line: str) -> list[int]:
        return [int(x) for x in line.split()[1:]] + [0] * 10

    a, b = fields(before), fields(after)
    d = [y - x for x, y in zip(a, b, strict=False)]
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    return busy / hz, d[7] / hz


def others_cpu_pct(busy_s: float, ours_s: float, elapsed_s: float, cpus: int) -> float:
    """Share of the machine's CPU capacity used by processes that are not ours."""
    return max(busy_s - ours_s, 0.0) / (elapsed_s * cpus) * 100.0


def cpu_seconds(pid: int) -> float | None:
    """CPU time of all threads of `pid`: nanoseconds from schedstat where the kernel
    has it (the 10 ms ticks of /proc/<pid>/stat are coarse for a 2 s run)."""
    try:
        total = 0
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return proc_stat_cpu_ticks(f.read()) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    """The process's resident set (or another size field: VmHWM, its peak), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return status_kb(f.read(), field)
    except OSError:
        return None


def foreign_tracers(ours: set[int]) -> list[str]:
    """Processes other than `ours` holding BPF tracing programs, as "comm[pid]"."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in ours:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    if prog_type_of(f.read()) not in TRACING_PROG_TYPES:
                        continue
                with open(f"/proc/{pid}/comm") as f:
                    found.append(f"{f.read().strip()}[{pid}]")
                break
            except OSError:
                continue
    return found


def _cpu_line() -> str:
    with open("/proc/stat") as f:
        return f.readline()


class Watch:
    """What else ran on the machine during one storm: other BPF tracers, and the CPU
    time of processes that are neither the storm nor the tracer measured."""

    def __init__(self, tracer_pid: int | None) -> None:
        self.ours = {os.getpid()} | ({tracer_pid} if tracer_pid else set())
        self.tracers = foreign_tracers(self.ours)
        self._stat = _cpu_line()
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._t0 = time.monotonic()

    def finish(self, tracer_cpu_s: float | None, recheck_tracers: bool = True) -> dict[str, Any]:
        """What happened since the start. `recheck_tracers` False takes the other
        tracers seen at the start only: after `proctrace -- COMMAND` has ended,
        its own probes are held by a child of its that detaches them (~1 s)."""
        elapsed = time.monotonic() - self._t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, steal = cpu_stat_seconds(self._stat, _cpu_line(), os.sysconf("SC_CLK_TCK"))
        storm_cpu = (children.ru_utime - self._children.ru_utime) + (children.ru_stime - self._children.ru_stime)
        cpus = os.cpu_count() or 1
        tracers = sorted(set(self.tracers) | (set(foreign_tracers(self.ours)) if recheck_tracers else set()))
        others = others_cpu_pct(busy, storm_cpu + (tracer_cpu_s or 0.0), elapsed, cpus)
        return {
            "others_cpu_pct": round(others, 1),
            "steal_pct": round(steal / (elapsed * cpus) * 100, 1),
            "foreign_tracers": tracers,
            "disturbed": bool(tracers) or others > MAX_OTHERS_CPU_PCT,
        }
