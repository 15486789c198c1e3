"""Recording live and reading back: the same events, crash safety, clean ends."""

from __future__ import annotations

import gzip
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.live.conftest import ROOT

pytestmark = pytest.mark.live

WORKLOAD = ["sh", "-c", 'sh -c "exit 7"; /bin/true "a b" c; kill -TERM $$']


def proctrace(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctrace", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, **kw
    )


@pytest.mark.parametrize("name", ["session.rec", "session.rec.gz"])
def test_replay_gives_exactly_the_live_json(tmp_path, name):
    rec = tmp_path / name
    live_out = tmp_path / "live.jsonl"
    live = proctrace("--json", "-o", str(live_out), "-w", str(rec), "--", *WORKLOAD)
    assert live.returncode == 143, live.stderr
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    replay = proctrace("-r", str(rec), "--json")
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == live_out.read_text()
    assert "warning" not in replay.stderr
    for view in ("--timeline", "--tree", "--summary"):
        shown = proctrace("-r", str(rec), view)
        assert shown.returncode == 0 and "exit 7" in shown.stdout, shown.stderr


def test_replayed_views_match_the_live_views(tmp_path):
    rec = tmp_path / "s.rec"
    live = proctrace("--timeline", "--json", "-w", str(rec), "--", *WORKLOAD)
    replay = proctrace("-r", str(rec), "--timeline", "--json")
    assert live.returncode == 143 and replay.returncode == 0
    assert [json.loads(line) for line in replay.stdout.splitlines()] == [
        json.loads(line) for line in live.stdout.splitlines()
    ]


def start_recorder(rec: Path, *options: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", "-w", str(rec), "-q", *options],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "proctrace: tracing" in proc.stderr.readline()
    return proc


def marker_exec() -> str:
    marker = f"proctrace-rec-{uuid.uuid4().hex}"
    subprocess.run(["/bin/true", marker], check=True)
    return marker


def test_recording_cut_by_kill_9_reads_back_to_its_last_record(tmp_path):
    rec = tmp_path / "crash.rec"
    proc = start_recorder(rec)
    marker = marker_exec()
    time.sleep(1.5)  # data reaches the file at least once a second
    os.kill(proc.pid, signal.SIGKILL)  # our own recorder, by pid
    proc.wait(timeout=10)
    replay = proctrace("-r", str(rec), "--json", "-e", "exec")
    assert replay.returncode == 0, replay.stderr
    assert "no trailer" in replay.stderr
    assert any(marker in json.loads(line)["argv"] for line in replay.stdout.splitlines())


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signals_close_the_recording_with_its_trailer(tmp_path, signo):
    rec = tmp_path / "clean.rec.gz"
    proc = start_recorder(rec)
    marker_exec()
    proc.send_signal(signo)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    replay = proctrace("-r", str(rec), "--summary")
    assert replay.returncode == 0
    assert "warning" not in replay.stderr
    trailer = json.loads(gzip.decompress(rec.read_bytes()).splitlines()[-1])
    assert trailer["type"] == "trailer"
    assert trailer["reason"] == f"stopped by {signal.Signals(signo).name}"


def test_existing_file_and_symlink_are_refused(tmp_path):
    existing = tmp_path / "existing.rec"
    existing.write_text("keep me\n")
    refused = proctrace("-w", str(existing), "-q", "--", "true")
    assert refused.returncode == 2 and "exists" in refused.stderr
    assert existing.read_text() == "keep me\n"
    target = tmp_path / "target"
    target.write_text("do not follow\n")
    link = tmp_path / "link.rec"
    link.symlink_to(target)
    refused = proctrace("-w", str(link), "-q", "--force", "--", "true")
    assert refused.returncode == 2, refused.stderr
    assert target.read_text() == "do not follow\n"
    forced = proctrace("-w", str(existing), "-q", "--force", "--", "true")
    assert forced.returncode == 0, forced.stderr
    assert proctrace("-r", str(existing), "--json").returncode == 0


def test_export_trace_live_and_from_the_recording_agree(tmp_path):
    rec, live_trace, replay_trace = tmp_path / "s.rec", tmp_path / "live.json", tmp_path / "replay.json"
    live = proctrace("-q", "-w", str(rec), "--export-trace", str(live_trace), "--", *WORKLOAD)
    assert live.returncode == 143, live.stderr
    replay = proctrace("-r", str(rec), "--export-trace", str(replay_trace), "-o", os.devnull)
    assert replay.returncode == 0, replay.stderr
    assert stat.S_IMODE(live_trace.stat().st_mode) == 0o600
    trace = json.loads(live_trace.read_text())
    assert json.loads(replay_trace.read_text()) == trace
    lifetimes = [e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") == "process"]
    outcomes = sorted(((e["args"]["exit_code"], e["args"]["signal"]) for e in lifetimes), key=str)
    assert outcomes == sorted([(7, None), (0, None), (None, "SIGTERM")], key=str)
    execs = [e["args"]["argv"] for e in trace["traceEvents"] if e.get("cat") == "exec"]
    assert ["/bin/true", "a b", "c"] in execs
