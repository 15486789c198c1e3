"""Kernel reaps, live: a parent that ignores SIGCHLD never waits, the kernel
releases its child at its exit (sched_process_free tells), and the child must
not be left a zombie in the views. The independent source: the parent's own
waitpid(), which finds no child to wait for, and /proc, which has no zombie."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.conftest import ROOT, run_proctrace, workload

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
