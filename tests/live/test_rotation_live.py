"""A rotated recording of real BPF events (tracer/session/rotation.py): under
a storm of short processes no event is lost, duplicated or split across the
parts; SIGUSR1 starts a new part; --keep leaves the latest N files. Each test
runs its own workload under `-- COMMAND`, so it sees only its processes."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from proctrace.session.rotation import numbered

from tests.live.conftest import ROOT, workload

pytestmark = pytest.mark.live

# Short processes: about 12,000 events, a few MB of recording. A part ends
# only at a batch's boundary, so the storm must last more drains (100 ms
# apart under load) than the parts it asks for: at 1500 processes, a session
# fast enough took only 4 drains for them now and then.
STORM = 3000


def proctrace(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctrace", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def text_of(path: Path) -> str:
    with gzip.open(path, "rt") if path.name.endswith(".gz") else open(path) as f:
        return f.read()


def header_of(path: Path) -> dict[str, Any]:
    return json.loads(text_of(path).split("\n", 1)[0])


def trailer_of(path: Path) -> dict[str, Any]:
    return json.loads(text_of(path).splitlines()[-1])


# gzip makes a storm's events about a tenth of their size: a smaller SIZE gives as many parts.
@pytest.mark.parametrize(("name", "size"), [("s.rec", "64K"), ("s.rec.gz", "8K")])
def test_a_storm_recorded_in_rotated_parts_reads_back_whole(tmp_path: Path, name: str, size: str) -> None:
    """The parts read back with -r (as a directory, and as files named one by
    one) give exactly the live --json stream of the same session, which is
    what an unrotated recording gives (tests/live/test_recording_live.py);
    every process the workload spawned is there with its exec, exit and reap."""
    parts, live_out, pidfile = tmp_path / "parts", tmp_path / "live.jsonl", tmp_path / "pids.json"
    parts.mkdir()
    marker = f"proctrace-rot-{uuid.uuid4().hex}"
    live = proctrace(
        "--json", "-o", str(live_out), "-w", str(parts / name), "--rotate-size", size,
        "--", *workload("spawn_many.py"), str(STORM), marker, str(pidfile),
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    assert ", 0 lost" in live.stderr, live.stderr
    files = sorted(parts.iterdir(), key=lambda p: header_of(p)["rotation"]["part"])
    assert len(files) >= 5, [p.name for p in files]
    assert [p.name for p in files] == [numbered(name, n) for n in range(len(files))]
    for path in files[:-1]:
        assert trailer_of(path)["reason"] == "rotated"
    assert trailer_of(files[-1])["reason"] == "the command ended"

    read_dir = proctrace("-r", str(parts), "--json")
    assert read_dir.returncode == 0 and "warning" not in read_dir.stderr, read_dir.stderr
    assert read_dir.stdout == live_out.read_text()
    one_by_one = proctrace(*(arg for path in reversed(files) for arg in ("-r", str(path))), "--json")
    assert one_by_one.stdout == read_dir.stdout, one_by_one.stderr

    events = json_lines(read_dir.stdout)
    assert len({json.dumps(e, sort_keys=True) for e in events}) == len(events)  # no event twice
    spawned = json.loads(pidfile.read_text())
    assert len(spawned) == STORM
    execs = {e["pid"] for e in events if e["type"] == "exec" and e["argv"][1:2] == [marker]}
    exits = {e["tgid"] for e in events if e["type"] == "exit" and e["process_exit"]}
    reaped = {e["reaped_pid"] for e in events if e["type"] == "reap"}
    assert execs == set(spawned)
    assert set(spawned) <= exits and set(spawned) <= reaped

    # Each part alone is a whole recording, and together they are every event once.
    total = 0
    for path in files:
        alone = proctrace("-r", str(path), "--json")
        assert alone.returncode == 0 and "warning" not in alone.stderr, alone.stderr
        total += sum(1 for e in json_lines(alone.stdout) if e["type"] != "lost")
    assert total == len(events)

    # The views see lives that span parts: the same tree as the live stream's session.
    tree_parts = proctrace("-r", str(parts), "--tree", "--color", "never")
    assert tree_parts.returncode == 0, tree_parts.stderr
    assert tree_parts.stdout.count(f"true {marker}") == STORM


def wait_for(path: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def wait_until_recorded(rec: Path, argument: str, timeout_s: float = 20) -> None:
    """Until the recording being written holds the reap of the process that ran /bin/true ARGUMENT."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = json_lines(proctrace("-r", str(rec), "--json").stdout)
        pids = {e["pid"] for e in events if e["type"] == "exec" and e["argv"] == ["/bin/true", argument]}
        if pids & {e["reaped_pid"] for e in events if e["type"] == "reap"}:
            return
        assert time.monotonic() < deadline, f"/bin/true {argument} was not recorded in {rec}"
        time.sleep(0.05)


def test_sigusr1_starts_a_new_part(tmp_path: Path) -> None:
    """A rotation asked for by signal: the file after it exists before the
    workload goes on, so what the workload does next is in the new part."""
    rec, ready, go = tmp_path / "s.rec", tmp_path / "ready", tmp_path / "go"
    script = f"/bin/true before; touch {ready}; while [ ! -e {go} ]; do sleep 0.02; done; /bin/true after"
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", "-q", "-w", str(rec), "--rotate-size", "1G", "--", "sh", "-c", script],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        started = proc.stderr.readline()
        assert "proctrace: tracing" in started, started + proc.stderr.read()
        wait_for(ready)
        wait_until_recorded(rec, "before")
        os.kill(proc.pid, signal.SIGUSR1)  # our own proctrace, by pid
        wait_for(tmp_path / "s.rec.1")
        go.touch()
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.rec")) == ["s.rec", "s.rec.1"]
    assert trailer_of(rec)["reason"] == "rotated" and trailer_of(tmp_path / "s.rec.1")["reason"] == "the command ended"
    # "before" was in the first part when the signal came; "after" ran once the new part existed.
    second = json_lines(proctrace("-r", str(tmp_path / "s.rec.1"), "--json", "-e", "exec").stdout)
    assert [e["argv"] for e in second if e["filename"] == "/bin/true"] == [["/bin/true", "after"]]
    both = json_lines(proctrace("-r", str(rec), "-r", str(tmp_path / "s.rec.1"), "--json", "-e", "exec").stdout)
    assert [e["argv"][1] for e in both if e["filename"] == "/bin/true"] == ["before", "after"]
    # The new part's snapshot has the processes the first part saw begin and
    # not reaped (the shell), and not those it saw reaped (/bin/true before).
    first = json_lines(proctrace("-r", str(rec), "--json").stdout)
    begun = {e["child_tgid"] for e in first if e["type"] == "fork" and not e["thread"]}
    begun |= {e["pid"] for e in first if e["type"] == "exec"}
    reaped = {e["reaped_pid"] for e in first if e["type"] == "reap"}
    snapshot = {p["pid"] for p in header_of(tmp_path / "s.rec.1")["snapshot"]}
    assert begun - reaped and begun - reaped <= snapshot
    assert not (reaped & snapshot)


def test_keep_leaves_the_latest_files_of_the_session(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("not proctrace's\n")
    marker = f"proctrace-keep-{uuid.uuid4().hex}"
    # A part ends only between batches, and a busy session drains every 100 ms:
    # enough processes for a second and more of batches, so that more parts
    # were made than were kept.
    live = proctrace(
        "-q", "-w", str(tmp_path / "s.rec"), "--rotate-size", "16K", "--keep", "3",
        "--", *workload("spawn_many.py"), "2400", marker, str(tmp_path / "pids.json"),
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    left = sorted(p for p in tmp_path.iterdir() if p.name.startswith("s.rec"))
    numbers = sorted(header_of(p)["rotation"]["part"] for p in left)
    assert len(left) == 3 and numbers[0] >= 3, numbers  # rotated often enough to have deleted some
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]
    assert (tmp_path / "other.txt").read_text() == "not proctrace's\n"
    assert trailer_of(tmp_path / f"s.rec.{numbers[-1]}")["reason"] == "the command ended"
    read = proctrace("-r", str(tmp_path / f"s.rec.{numbers[0]}"), "-r", str(tmp_path / f"s.rec.{numbers[1]}"))
    assert read.returncode == 0, read.stderr


def test_rotate_time_names_each_file_by_its_start_in_utc(tmp_path: Path) -> None:
    """A new file every second, named by strftime at its start: every file
    is a part of the session, in the order of its name, and together they
    give the live stream."""
    parts, live_out = tmp_path / "parts", tmp_path / "live.jsonl"
    parts.mkdir()
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true tick $i; sleep 0.3; done"
    started = time.gmtime()
    live = proctrace(
        "--json", "-o", str(live_out), "-w", str(parts / "%Y%m%d-%H%M%S.rec"), "--rotate-time", "1s",
        "--", "sh", "-c", script,
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    files = sorted(parts.iterdir())
    assert len(files) >= 2, [p.name for p in files]
    assert [header_of(p)["rotation"]["part"] for p in files] == list(range(len(files)))
    assert all(re.fullmatch(r"[0-9]{8}-[0-9]{6}\.rec(\.[0-9]+)?", p.name) for p in files), [p.name for p in files]
    assert files[0].name >= time.strftime("%Y%m%d-%H%M%S", started)
    read = proctrace("-r", str(parts), "--json")
    assert read.returncode == 0 and "warning" not in read.stderr, read.stderr
    assert read.stdout == live_out.read_text()
    ticks = [e["argv"][2] for e in json_lines(read.stdout) if e["type"] == "exec" and e["argv"][1:2] == ["tick"]]
    assert ticks == [str(i) for i in range(1, 11)]
