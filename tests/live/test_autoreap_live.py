"""Kernel reaps, live: a parent that ignores SIGCHLD never waits, the kernel
releases its child at its exit (sched_process_free tells), and the child must
not be left a zombie in the views. The independent source: the parent's own
waitpid(), which finds no child to wait for, and /proc, which has no zombie."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctrace.kernel.program import WAIT_SYSCALL_NUMBERS

from tests.live.conftest import ROOT, Tracer, run_proctrace, workload

pytestmark = pytest.mark.live


def test_a_child_of_a_parent_that_ignores_sigchld_is_reaped_by_the_kernel(tmp_path: Path) -> None:
    trace = run_proctrace(tmp_path, workload("ignores_sigchld.py"), "-w", str(tmp_path / "s.rec"))
    assert trace.returncode == 0, trace.stderr
    child_text, verdict = trace.stdout.splitlines()
    assert verdict == "no child to wait for"  # the kernel had released it
    child = int(child_text)
    assert trace.process_exit(child)["exit_code"] == 3
    reaps = trace.of_type("reap", reaped_pid=child)
    assert len(reaps) == 1 and reaps[0]["autoreaped"] is True
    # A wait()ed child is no kernel reap: the parent's own reap by its waiter.
    parent = trace.of_type("exec")[0]["tgid"]
    assert [r["autoreaped"] for r in trace.of_type("reap", reaped_pid=parent)] == [False]

    timeline = subprocess.run(
        [sys.executable, "-m", "proctrace", "-r", str(tmp_path / "s.rec"), "--timeline", "--json"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    record = next(r for r in map(json.loads, timeline.splitlines()) if r["pid"] == child)
    assert record["autoreaped"] is True and record["zombie_ns"] == 0 and record["zombie_at_end"] is False
    summary = subprocess.run(
        [sys.executable, "-m", "proctrace", "-r", str(tmp_path / "s.rec"), "--summary", "--color", "never"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    assert " 0 zombies not reaped" in summary.splitlines()[0]


# A parent that forks a child and at once blocks in waitpid() (wait4), then
# prints the child's pid and its status as waitpid gave them. The child exits
# with 3 once a line comes on its standard input (the parent's).
WAITING_PARENT = """
import os, sys
child = os.fork()
if child == 0:
    sys.stdin.readline()
    os._exit(3)
print(child, flush=True)
_, status = os.waitpid(child, 0)
print(status, flush=True)
"""


def test_a_wait_begun_before_the_session_is_the_waiters_reap_not_the_kernels(tmp_path: Path) -> None:
    """A shell waiting for its foreground job when proctrace starts: the wait's
    entry was never seen. Its reap is still the parent's, with the status
    waitpid() itself returned, and the child's free is no kernel reap. The
    independent sources: /proc/PID/syscall, which shows the parent inside
    wait4 before the session starts, and the parent's own waitpid()."""
    numbers = WAIT_SYSCALL_NUMBERS.get(platform.machine())
    if numbers is None:
        # Not a missing prerequisite: proctrace knows no argument registers
        # there, and says so (README, What is traced).
        pytest.skip(f"proctrace reads wait4's registers on {', '.join(WAIT_SYSCALL_NUMBERS)} only")
    wait4 = numbers[0]
    parent = subprocess.Popen(
        [sys.executable, "-c", WAITING_PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdin is not None and parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while Path(f"/proc/{parent.pid}/syscall").read_text().split()[0] != str(wait4):
            assert time.monotonic() < deadline, "the parent never blocked in wait4"
            time.sleep(0.01)
        tracer = Tracer(tmp_path / "events.jsonl")  # ready: every program attached
        try:
            parent.stdin.write("go\n")
            parent.stdin.flush()
            status = int(parent.stdout.readline())
            parent.wait(timeout=10)
        finally:
            events = tracer.stop()
    finally:
        if parent.poll() is None:
            parent.kill()  # our own workload, by pid
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    reaps = [e for e in events if e["type"] == "reap" and e["reaped_pid"] == child]
    assert len(reaps) == 1, reaps
    assert reaps[0]["autoreaped"] is False and reaps[0]["tgid"] == parent.pid
    assert reaps[0]["exit_code"] == 3
