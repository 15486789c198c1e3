"""What a process used, at its exit, against GNU time, which prints the rusage
wait4 gave it for its child: an independent reader of the kernel's accounting.

The workload has no children (so wait4's figures are its own) and two threads
besides its main one that burn CPU and exit before it: their share must be
counted too. It touches 120 MiB, so its peak resident set and its minor
faults are large next to any rounding.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.environment import requires
from tests.live.conftest import run_proctrace

pytestmark = pytest.mark.live

GNU_TIME = "/usr/bin/time"
WORKLOAD = """
import threading
def burn():
    s = 0
    for i in range(1_500_000):
        s += i * i
threads = [threading.Thread(target=burn) for _ in range(2)]
for t in threads:
    t.start()
block = bytearray(120 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
burn()
for t in threads:
    t.join()
"""


def test_a_process_exit_carries_what_gnu_time_reports_for_it(tmp_path: Path) -> None:
    requires(Path(GNU_TIME).exists(), "needs GNU time (/usr/bin/time; scripts/test installs it)")
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    report = tmp_path / "time.txt"
    command = [GNU_TIME, "-o", str(report), "-f", "%e %U %S %M %R %F %w %c", python, "-c", WORKLOAD]
    trace = run_proctrace(tmp_path, command)
    assert trace.returncode == 0, trace.stderr
    _elapsed, user_s, sys_s, maxrss, minflt, majflt, nvcsw, nivcsw = report.read_text().split()
    workload = [e for e in trace.of_type("exec") if e["argv"][:2] == [python, "-c"]]
    assert len(workload) == 1, workload
    ours = trace.process_exit(workload[0]["tgid"])

    def within_cpu(ns: int, seconds: str) -> bool:
        theirs = float(seconds)
        return abs(ns / 1e9 - theirs) <= 0.010 + 0.05 * theirs  # time prints hundredths

    assert within_cpu(ours["cpu_user_ns"], user_s), (ours["cpu_user_ns"], user_s)
    assert within_cpu(ours["cpu_sys_ns"], sys_s), (ours["cpu_sys_ns"], sys_s)
    assert ours["cpu_user_ns"] > 0.1e9  # three threads burnt CPU: not a vacuous match
    assert abs(ours["max_rss_kb"] - int(maxrss)) <= 0.03 * int(maxrss), (ours["max_rss_kb"], maxrss)
    assert ours["max_rss_kb"] > 120 * 1024
    assert abs(ours["minflt"] - int(minflt)) <= 0.03 * int(minflt) + 1, (ours["minflt"], minflt)
    assert abs(ours["majflt"] - int(majflt)) <= 0.03 * int(majflt) + 2, (ours["majflt"], majflt)
    # The process still switches after its exit tracepoint (it sleeps once
    # more in exit_notify, and its last schedule() is after): rusage counts
    # those, this event cannot. A few at most.
    assert 0 <= int(nvcsw) - ours["nvcsw"] <= 5, (ours["nvcsw"], nvcsw)
    assert abs(int(nivcsw) - ours["nivcsw"]) <= 5, (ours["nivcsw"], nivcsw)
    assert ours["read_bytes"] is not None and ours["write_bytes"] is not None
    # A thread's exit carries none of it: the process's figures come once.
    thread_exits = trace.of_type("exit", tgid=ours["tgid"], process_exit=False)
    assert len(thread_exits) == 2 and all("cpu_user_ns" not in e for e in thread_exits)
