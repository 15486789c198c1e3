"""proctrace's exit statuses agree with bpftrace's `curtask->exit_code`, an
independent reader of the same kernel field (bpftrace resolves it through BTF)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from tests.environment import requires

pytestmark = pytest.mark.live

BPFTRACE_PROGRAM = 'tracepoint:sched:sched_process_exit { printf("EXIT %d %d\\n", tid, curtask->exit_code); }'
WORKLOAD = [
    "sh",
    "-c",
    'sh -c "exit 7"; sh -c "kill -TERM \\$\\$"; sh -c "exit 255"; sh -c "kill -KILL \\$\\$"; exit 3',
]


def start_bpftrace() -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["bpftrace", "-e", BPFTRACE_PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = proc.stdout.readline()  # "Attaching 1 probe..." once attached
    if "Attaching" not in line or time.monotonic() > deadline:
        proc.kill()
        raise AssertionError(f"bpftrace did not attach: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc


def test_exit_statuses_match_bpftrace(trace):
    requires(shutil.which("bpftrace") is not None, "needs bpftrace")
    oracle = start_bpftrace()
    try:
        t = trace(WORKLOAD)
        time.sleep(0.3)
    finally:
        oracle.send_signal(signal.SIGINT)  # a process this test started, by pid
        out, _ = oracle.communicate(timeout=30)
    assert t.returncode == 3
    seen = {}
    for line in out.splitlines():
        if line.startswith("EXIT "):
            _, tid, code = line.split()
            seen[int(tid)] = int(code)
    exits = t.of_type("exit", process_exit=True)
    assert len(exits) == 5
    # Every process here is single-threaded, so the task's exit_code is its status.
    assert {e["pid"]: e["status"] for e in exits} == {e["pid"]: seen.get(e["pid"]) for e in exits}
    assert sorted(e["status"] for e in exits) == sorted([7 << 8, 15, 255 << 8, 9, 3 << 8])
