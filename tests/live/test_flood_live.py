"""Floods of signals, live: they never cost a fork, exec, exit or reap, and every
signal is either streamed, counted in the kernel, or counted lost.

The workload (tests/workloads/signal_flood.py) runs the bench's C fork storm,
a kill loop sending SIGUSR1 as fast as Python can, and optionally a process
under strace, all at once, and reports how many signals it sent. What proctrace
saw is checked against that count and against the storm's known shape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.environment import requires
from tests.live.conftest import Trace, run_proctrace, workload

pytestmark = pytest.mark.live

STORM = 3000  # processes of /bin/true, on two workers
SYSCALLS = 20_000  # getppid() calls under strace: two ptrace stops each, at the least
RATE_LIMIT = 1000  # the default --signal-rate
CLD_TRAPPED, CLD_STOPPED = 4, 5  # SIGCHLD si_codes


def flood(
    tmp_path: Path, spawner: Path, *options: str, ignore: bool = False, strace: bool = False
) -> tuple[Trace, dict[str, Any]]:
    report = tmp_path / "report.json"
    command = [*workload("signal_flood.py"), str(spawner), str(STORM), str(report)]
    if ignore:
        command.append("--ignore")
    if strace:
        command += ["--strace", str(SYSCALLS)]
    trace = run_proctrace(tmp_path, command, *options, timeout=300)
    assert trace.returncode == 0, trace.stderr
    assert "Traceback" not in trace.stderr, trace.stderr
    return trace, json.loads(report.read_text())


def lost_by_class(trace: Trace) -> dict[str, int]:
    lost = {"lifecycle": 0, "signal": 0}
    for record in trace.of_type("lost"):
        lost[record["class"]] += record["count"]  # a record without a class fails here, as it must
    return lost


def assert_the_storm_is_whole(trace: Trace) -> None:
    """Every run of /bin/true in the storm (and the one after it) has its fork, exec,
    exit 0 and reap: a lifecycle event lost anywhere in it would show here."""
    runs = {e["tgid"] for e in trace.execs_of("/bin/true")}
    assert len(runs) == STORM + 1
    forked = {e["child_pid"] for e in trace.of_type("fork")}
    assert runs <= forked
    ended = {e["tgid"]: e for e in trace.of_type("exit", process_exit=True) if e["tgid"] in runs}
    assert len(ended) == STORM + 1 and all(e["exit_code"] == 0 for e in ended.values())
    reaped = {e["reaped_pid"] for e in trace.of_type("reap") if e["reaped_pid"] in runs}
    assert reaped == runs


def test_a_kill_loop_and_a_tracee_under_strace_cost_no_lifecycle_event_during_a_fork_storm(
    tmp_path: Path, spawner: Path
) -> None:
    requires(shutil.which("strace") is not None, "needs strace (scripts/test installs it)")
    trace, report = flood(tmp_path, spawner, strace=True)
    assert report["storm_status"] == 0 and report["strace_status"] == 0 and report["target_status"] == 0
    lost = lost_by_class(trace)
    assert lost["lifecycle"] == 0, f"lifecycle events lost to the flood: {lost}"
    assert_the_storm_is_whole(trace)

    # The kill loop: each SIGUSR1 streamed, or counted where it was generated.
    sender, target = report["sender"], report["target"]
    streamed = trace.of_type("signal", stage="generate", signal="SIGUSR1", tgid=sender, target_pid=target)
    folded = trace.of_type("signal_summary", stage="generate", signal="SIGUSR1", tgid=sender, target_pid=target)
    assert {f["reason"] for f in folded} == {"rate_limit"}
    suppressed = sum(f["count"] for f in folded)
    assert suppressed > 0, "the kill loop ran far beyond the rate limit"
    if lost["signal"] == 0:
        assert len(streamed) + suppressed == report["sent"]
    else:
        assert len(streamed) + suppressed + lost["signal"] >= report["sent"]
    # The rate limit: at most RATE_LIMIT streamed in each one-second window (two
    # CPUs racing on the window may let one or two more through).
    first = min(e["ts_ns"] for e in streamed)
    last = max([e["ts_ns"] for e in streamed] + [f["last_ns"] for f in folded])
    windows = (last - first) // 1_000_000_000 + 1
    assert len(streamed) <= windows * (RATE_LIMIT + 2)

    # strace: its tracee's ptrace stops are counted in the kernel, per tracer and
    # tracee, and none is streamed one by one.
    tracer = report["strace"]
    stops = trace.of_type("signal_summary", reason="ptrace_stop", target_pid=tracer)
    assert sum(s["count"] for s in stops) >= 2 * SYSCALLS
    assert {s["signal"] for s in stops} == {"SIGCHLD"}
    assert trace.of_type("signal", stage="generate", signal="SIGCHLD", target_pid=tracer, code=CLD_TRAPPED) == []
    tracee = max(stops, key=lambda s: s["count"])
    assert tracee["ppid"] == tracer and tracee["target_comm"] == "strace"  # strace's child, the loop


def test_with_every_signal_streamed_the_flood_fills_only_its_own_buffer_and_each_loss_is_counted(
    tmp_path: Path, spawner: Path
) -> None:
    """--all-signals with a small buffer for signals: it overflows, the
    lifecycle's (the default 4 MiB) does not, and the SIGUSR1s streamed plus the signals counted
    lost are exactly the kill() calls made (the target ignores SIGUSR1, so each
    is one generate event, and nothing else in the session is a signal)."""
    trace, report = flood(tmp_path, spawner, "--all-signals", "--signal-buffer-size", "64K", ignore=True)
    assert report["storm_status"] == 0 and report["target_status"] == 0
    lost = lost_by_class(trace)
    assert lost["signal"] > 0, "a 64 KiB buffer must overflow under the kill loop"
    assert lost["lifecycle"] == 0, f"lifecycle events lost to the flood: {lost}"
    assert_the_storm_is_whole(trace)
    signals = trace.of_type("signal")
    others = [e for e in signals if e["signal"] != "SIGUSR1" or e["stage"] != "generate"]
    assert others == [], f"unexpected signal events: {others[:3]}"
    assert all(e["result"] == "ignored" and e["target_pid"] == report["target"] for e in signals)
    assert len(signals) + lost["signal"] == report["sent"]
    assert trace.of_type("signal_summary") == []


def test_job_control_stops_are_still_streamed(trace) -> None:
    """Folding is for ptrace stops: a SIGSTOP, and the SIGCHLD (CLD_STOPPED) that
    tells the real parent of the stop, still appear one by one."""
    result = trace(workload("stop_cont.py"))
    assert result.returncode == 0, result.stderr
    parent = next(e for e in result.events if e["type"] == "exec")["tgid"]
    child = next(e["child_pid"] for e in result.of_type("fork") if e["tgid"] == parent)
    assert result.of_type("signal", stage="generate", signal="SIGSTOP", target_pid=child)
    assert result.of_type("signal", stage="deliver", signal="SIGSTOP", tgid=child)
    stopped = result.of_type("signal", stage="generate", signal="SIGCHLD", tgid=child, code=CLD_STOPPED)
    assert [e["target_pid"] for e in stopped] == [parent]
    assert result.of_type("signal_summary") == []


def test_a_signal_that_kills_is_never_held_back_by_the_rate_limit(tmp_path: Path, trace) -> None:
    """The target handles SIGUSR1 for 0.3 s, then leaves it to its default
    action: by then its one-second window has long used up its 1,000 signals,
    yet the SIGUSR1 that kills it is streamed, and so is its delivery."""
    report = tmp_path / "report.json"
    result = trace([*workload("fatal_in_flood.py"), str(report)])
    assert result.returncode == 0, result.stderr
    pids = json.loads(report.read_text())
    sender, target = pids["sender"], pids["target"]
    death = result.process_exit(target)
    assert death["signal"] == "SIGUSR1"
    sent = result.of_type("signal", stage="generate", signal="SIGUSR1", tgid=sender, target_pid=target)
    first = min(e["ts_ns"] for e in sent)
    in_first_window = [e for e in sent if e["ts_ns"] < first + 1_000_000_000]
    assert len(in_first_window) > RATE_LIMIT, "the signal that may kill came on top of the window's allowance"
    fatal = [e for e in sent if death["ts_ns"] - 5_000_000 <= e["ts_ns"] <= death["ts_ns"]]
    assert fatal, "the SIGUSR1 that killed the target was held back"
    # Its delivery is streamed too, by one of the kernel's two ways to a death:
    # a SIGUSR1 that was fatal when generated turns into a group exit and a
    # SIGKILL delivered to each thread; one generated while the handler was
    # still set, and dequeued after SIG_DFL was restored, is delivered itself
    # to the default action.
    teardown = result.of_type("signal", stage="deliver", signal="SIGKILL", tgid=target, group_exit_signal="SIGUSR1")
    by_default = result.of_type("signal", stage="deliver", signal="SIGUSR1", tgid=target, handler="default")
    assert teardown or by_default, "the delivery that killed the target was held back"
    suppressed = result.of_type("signal_summary", reason="rate_limit", tgid=sender, target_pid=target)
    assert sum(s["count"] for s in suppressed) + len(sent) == pids["sent"]
