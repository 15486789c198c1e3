"""Overload and faults, live: losses are counted exactly and never silent; a
recording that cannot be written ends the session with a clear message.

The storm is the soak's spawner.c (shipped with proctrace.bench), compiled here: its tree produces a
number of events known in advance (see the file), so what proctrace received
plus what it says it lost can be checked against it exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctrace.bench.soak import expected_events  # the spawner tree's event count, defined once

from tests.live.conftest import ROOT

pytestmark = pytest.mark.live

STORM = 5000  # processes: at a one-page buffer, thousands of events are lost
WORKERS = 2
SMALLEST_BUFFER = "1"  # bytes: the smallest --buffer-size accepted, rounded up to one page
TOTALS = re.compile(r"^proctrace: (\d+) events, (\d+) lost(?: \([^)]*\))?$", re.MULTILINE)


def storm(spawner: Path, processes: int = STORM) -> list[str]:
    return [str(spawner), str(processes), str(WORKERS), "/bin/true"]


def proctrace(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctrace", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def totals(stderr: str) -> tuple[int, int]:
    found = TOTALS.findall(stderr)
    assert len(found) == 1, f"one totals line expected on stderr:\n{stderr}"
    return int(found[0][0]), int(found[0][1])


# --------------------------------------------------------------------------- overload


@pytest.mark.parametrize("buffer", ["ring", "perf"])
def test_tiny_buffer_counts_every_lost_event_and_tracing_goes_on(tmp_path, spawner, buffer):
    out = tmp_path / "events.jsonl"
    run = proctrace(
        "--json", "-o", str(out), "--buffer", buffer, "--buffer-size", SMALLEST_BUFFER, "--", *storm(spawner)
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    received, lost = totals(run.stderr)
    assert lost > 0, "a one-page buffer under a storm must overflow"

    records = [json.loads(line) for line in out.read_text().splitlines()]
    events = [r for r in records if r["type"] != "lost"]
    losses = [r for r in records if r["type"] == "lost"]
    assert len(events) == received
    # Shown live: each report says how many of its class since the last, and the class's running total.
    assert sum(r["count"] for r in losses) == lost
    for event_class in ("lifecycle", "signal"):
        of_class = [r for r in losses if r["class"] == event_class]
        assert [r["total"] for r in of_class] == list(itertools.accumulate(r["count"] for r in of_class))
    assert {r["class"] for r in losses} == {"lifecycle"}, "the storm sends no signal: only lifecycle events are lost"
    assert received + lost == expected_events(STORM, WORKERS)

    # Tracing goes on after the first loss, up to the command's own end.
    first_loss = records.index(losses[0])
    assert any(r["type"] != "lost" for r in records[first_loss + 1 :])
    top = events[0]
    assert top["type"] == "exec" and top["filename"] == str(spawner)
    after = [e for e in events if e["type"] == "exec" and e["argv"] == ["/bin/true", "after-storm"]]
    assert len(after) == 1, "the run after the storm (the buffer had drained) is seen"
    top_exit = [e for e in events if e["type"] == "exit" and e["tgid"] == top["tgid"] and e["process_exit"]]
    assert len(top_exit) == 1 and top_exit[0]["exit_code"] == 0


def test_lifecycle_events_the_ring_refuses_go_to_the_signal_ring_in_their_place(tmp_path, spawner):
    """A lifecycle event its ring refuses (here a one-page ring under a storm;
    on 6.15+ also a rare refusal with room to spare) is sent on the signals'
    ring: with room there, the storm loses nothing, and every event is in the
    stream in timestamp order."""
    out = tmp_path / "events.jsonl"
    run = proctrace(
        "--json", "-o", str(out), "--buffer-size", SMALLEST_BUFFER, "--signal-buffer-size", "16M",
        "--", *storm(spawner),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    received, lost = totals(run.stderr)
    assert lost == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == received == expected_events(STORM, WORKERS)
    assert all(e["type"] != "lost" for e in events)
    stamps = [e["ts_ns"] for e in events]
    assert stamps == sorted(stamps)


def test_perf_buffer_losses_are_reported_by_proctrace_alone(tmp_path, spawner):
    """bcc's default perf-buffer lost callback prints "Possibly lost N samples"
    to stderr per overflow, a second and under-counting report (the exact one
    is proctrace's per-CPU counter); stderr must hold proctrace's lines only."""
    run = proctrace(
        "--json", "-o", str(tmp_path / "events.jsonl"), "--buffer", "perf", "--buffer-size", SMALLEST_BUFFER,
        "--", *storm(spawner),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert totals(run.stderr)[1] > 0
    foreign = [line for line in run.stderr.splitlines() if not line.startswith("proctrace: ")]
    assert foreign == [], f"{len(foreign)} stderr lines not from proctrace, first: {foreign[0]!r}"


def test_pretty_stream_shows_losses_as_they_happen(tmp_path, spawner):
    out = tmp_path / "stream.txt"
    run = proctrace("-o", str(out), "--buffer-size", SMALLEST_BUFFER, "--", *storm(spawner))
    assert run.returncode == 0, run.stderr
    received, lost = totals(run.stderr)
    assert lost > 0
    lines = out.read_text().splitlines()
    notices = [re.match(r"\*\*\* (\d+) lifecycle events lost \(kernel buffer full; (\d+) in all\)", ln) for ln in lines]
    counts = [int(m.group(1)) for m in notices if m]
    assert sum(counts) == lost
    events = [ln for ln in lines[1:] if not ln.startswith("*** ")]
    assert len(events) == received
    first_notice = next(i for i, m in enumerate(notices) if m)
    assert first_notice < len(lines) - 1, "events follow the first loss"


def test_losses_are_recorded_and_replayed_in_the_summary(tmp_path, spawner):
    rec = tmp_path / "storm.rec"
    run = proctrace("-w", str(rec), "-q", "--buffer-size", SMALLEST_BUFFER, "--", *storm(spawner))
    assert run.returncode == 0, run.stderr
    received, lost = totals(run.stderr)
    assert lost > 0
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    assert sum(r["count"] for r in records if r["type"] == "lost") == lost
    trailer = records[-1]
    assert trailer["type"] == "trailer" and (trailer["events"], trailer["lost"]) == (received, lost)

    replay = proctrace("-r", str(rec), "--json")
    assert replay.returncode == 0, replay.stderr
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]
    assert sum(r["count"] for r in replayed if r["type"] == "lost") == lost
    summary = proctrace("-r", str(rec), "--summary")
    assert summary.returncode == 0, summary.stderr
    assert f"Events lost: {lost}" in summary.stdout


# --------------------------------------------------------------------------- faults while recording


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "256k"):
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_disk_full_ends_with_a_clear_error_and_a_readable_recording(tmp_path, spawner):
    with small_tmpfs(tmp_path / "small") as small:
        rec = small / "storm.rec"
        run = proctrace("-w", str(rec), "-q", "--", *storm(spawner, 20_000))
        assert run.returncode != 0
        assert "Traceback" not in run.stderr
        (message,) = [ln for ln in run.stderr.splitlines() if "the disk is full" in ln]
        assert str(rec) in message
        written = int(re.search(r"\((\d+) events\)", message).group(1))
        data = rec.read_bytes()
        assert data.endswith(b"\n"), "the file ends with a complete record"

        replay = proctrace("-r", str(rec), "--json")
        assert replay.returncode == 0, replay.stderr
        assert "Traceback" not in replay.stderr
        assert "no trailer" in replay.stderr
        replayed = [json.loads(line) for line in replay.stdout.splitlines()]
        assert len([r for r in replayed if r["type"] != "lost"]) == written > 0


def test_removed_directory_ends_with_a_clear_error(tmp_path, spawner):
    directory = tmp_path / "doomed"
    directory.mkdir()
    rec = directory / "storm.rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", "-w", str(rec), "-q", "--", *storm(spawner, 50_000)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "proctrace: tracing" in proc.stderr.readline()
        header_size = rec.stat().st_size
        deadline = time.monotonic() + 60
        while rec.stat().st_size == header_size and time.monotonic() < deadline:
            time.sleep(0.1)  # until events reach the file
        shutil.rmtree(directory)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()  # our own tracer, by pid
            proc.wait()
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert f"{rec}: the recording's directory was removed" in err
