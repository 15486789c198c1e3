"""Whole-machine mode: start, stop cleanly on a signal, and survive a closed pipe.

These tests look only for the marker processes they start themselves; other
processes on the machine may appear in the stream and are ignored.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.live.conftest import ROOT

pytestmark = pytest.mark.live


def start_tracer(*options: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    ready = proc.stderr.readline()
    assert "proctrace: tracing every process" in ready, ready
    return proc


def run_marker() -> str:
    marker = f"proctrace-marker-{uuid.uuid4().hex}"
    subprocess.run(["/bin/true", marker], check=True)
    return marker


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stop_signal_ends_cleanly_with_summary(signo):
    proc = start_tracer("--json")
    marker = run_marker()
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = False
    while time.monotonic() < deadline and not seen:
        line = proc.stdout.readline()
        event = json.loads(line)
        seen = event["type"] == "exec" and marker in event["argv"]
    assert seen, "the marker exec was streamed"
    proc.send_signal(signo)  # the tracer this test started, by pid
    # Read on through the same buffered file: communicate() would read the raw
    # pipe and lose what readline() has already buffered.
    out = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.wait(timeout=30) == 0
    for line in out.splitlines():
        json.loads(line)  # every line written before the stop is whole
    assert err.strip().splitlines()[-1].startswith("proctrace: ")
    assert " events, 0 lost" in err
    assert "Traceback" not in err


def test_closed_pipe_ends_quietly():
    pipeline = subprocess.Popen(
        f"{sys.executable} -m proctrace --json | head -1",
        shell=True,  # the test needs a real pipe into head; proctrace itself runs no shell
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Give the tracer something to print, however quiet the machine is; once
    # head has its line, the tracer must notice the closed pipe and stop.
    deadline = time.monotonic() + 60
    while pipeline.poll() is None and time.monotonic() < deadline:
        subprocess.run(["/bin/true"], check=True)
        time.sleep(0.05)
    out, err = pipeline.communicate(timeout=10)
    assert pipeline.returncode == 0
    assert len(out.splitlines()) == 1
    json.loads(out)
    assert "Traceback" not in err
    assert "Exception" not in err


def test_a_terminal_gets_a_status_line_with_rate_live_processes_and_losses():
    """On a TTY the bottom line says how fast events come, how many processes
    are alive (counted in /proc) and how many events were lost."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proctrace", "--", "sleep", "1.3"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the tracer closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
    statuses = re.findall(rb"\r\x1b\[K([\d,]+) events/s \xc2\xb7 (\d+) live processes \xc2\xb7 (\d+) lost", screen)
    assert statuses, screen[-500:]
    assert all(int(live) > 1 for _, live, _ in statuses)  # this test and the tracer at least
    assert all(lost == b"0" for _, _, lost in statuses)
    assert screen.endswith(b"\r\x1b[K"), "the status line is cleared at the end"
