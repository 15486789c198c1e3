"""Filtering live, in the kernel where it can: only the selected processes, and
the same events as the same filter applied to an unfiltered trace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.environment import requires
from tests.live.conftest import ROOT, Tracer

pytestmark = pytest.mark.live


def program(tmp_path: Path, name: str) -> Path:
    """A copy of /bin/sh under a name of our own, so its comm is unique."""
    path = tmp_path / name
    shutil.copy("/bin/sh", path)
    return path


def subtree(events: list[dict[str, Any]], root: int) -> set[int]:
    pids = {root}
    for ev in events:
        if ev["type"] == "fork" and (ev["tgid"] in pids or ev["pid"] in pids):
            pids.add(ev["child_pid"])
    return pids


def workload(prog: Path) -> None:
    subprocess.run([str(prog), "-c", 'sh -c "exit 3"; /bin/true selected'], check=False)
    subprocess.run(["/bin/true", "not-selected"], check=True)


@pytest.mark.parametrize("name_len", ["short", "long"])
def test_comm_follow_shows_the_named_tree_and_nothing_else(tmp_path, name_len):
    tag = uuid.uuid4().hex[:8]
    name = f"ptf{tag}" if name_len == "short" else f"ptfilter-{tag}-long-name"
    prog = program(tmp_path, name)
    tracer = Tracer(tmp_path / "out.jsonl", "-c", name, "-f")
    workload(prog)
    events = tracer.stop()
    roots = [e for e in events if e["type"] == "exec" and e["filename"] == str(prog)]
    assert len(roots) == 1
    tree = subtree(events, roots[0]["tgid"])
    about = [e for e in events if e["type"] != "lost"]
    for ev in about:
        involved = {ev["tgid"], ev["pid"], ev.get("target_pid"), ev.get("reaped_pid")}
        assert involved & tree, f"event outside the selected tree: {ev}"
    argvs = [e["argv"] for e in about if e["type"] == "exec"]
    assert [str(prog), "-c", 'sh -c "exit 3"; /bin/true selected'] in argvs
    assert ["/bin/true", "selected"] in argvs
    assert ["/bin/true", "not-selected"] not in argvs
    assert any(e["type"] == "exit" and e["exit_code"] == 3 for e in about)


def test_live_filtering_equals_the_same_filter_on_an_unfiltered_recording(tmp_path):
    name = f"pteq{uuid.uuid4().hex[:8]}"
    prog = program(tmp_path, name)
    recording = tmp_path / "all.rec"
    everything = Tracer(tmp_path / "all.jsonl", "-w", str(recording))
    filtered = Tracer(tmp_path / "filtered.jsonl", "-c", name, "-f", "--no-threads")
    workload(prog)
    live = filtered.stop()
    everything.stop()
    # The unfiltered recording began first and ended last, and the workload ran
    # between: it holds every event the filtered session could have shown.
    replay = subprocess.run(
        [sys.executable, "-m", "proctrace", "-r", str(recording), "--json", "-c", name, "-f", "--no-threads"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]

    # Each tracer's program reads the clock itself, microseconds apart; and the
    # CPU an exit reports, which a timer tick between the two programs' reads
    # can move (the tick charges the exiting task and brings its runtime up to
    # date: one CI run saw 69 us of user time in one session, 1.04 ms of system
    # time in the other, for the same exit).
    read_apart = ("ts_ns", "time", "lifetime_ns", "cpu_user_ns", "cpu_sys_ns")

    def strip(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k not in read_apart} for e in events]

    assert strip(live) == strip(replayed)
    for ev in (*live, *replayed):
        if ev["type"] == "exit" and ev["process_exit"]:
            assert type(ev["cpu_user_ns"]) is int and type(ev["cpu_sys_ns"]) is int
    assert len(live) >= 8


MAKEFILE = """\
all: a.o b.o
\t@echo linked
a.o: a.c
\t$(CC) -c a.c -o a.o
b.o: b.c
\t$(CC) -c b.c -o b.o
"""


def test_make_and_everything_it_spawns(tmp_path):
    requires(shutil.which("make") is not None and shutil.which("cc") is not None, "needs make and a C compiler")
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "a.c").write_text("int a(void) { return 1; }\n")
    (tmp_path / "b.c").write_text("int b(void) { return 2; }\n")
    tracer = Tracer(tmp_path / "out.jsonl", "-c", "make", "-f")
    subprocess.run(["make", "-j2", "-C", str(tmp_path)], check=True, capture_output=True)
    subprocess.run(["/bin/true", "not-make"], check=True)
    events = tracer.stop()
    makes = [e for e in events if e["type"] == "exec" and e["comm"] == "make" and str(tmp_path) in e["argv"]]
    assert len(makes) == 1
    tree = subtree(events, makes[0]["tgid"])
    for ev in events:
        involved = {ev["tgid"], ev["pid"], ev.get("target_pid"), ev.get("reaped_pid")}
        assert involved & tree, f"event outside make's tree: {ev}"
    execd = {Path(e["filename"]).name for e in events if e["type"] == "exec" and e["errno"] is None}
    assert "make" in execd
    assert {"make", "cc", "cc1", "as"} <= execd, execd  # make, the compiler driver and its passes
    assert sum(1 for e in events if e["type"] == "exec" and "-c" in e["argv"] and "a.c" in e["argv"]) >= 1
    assert not any(e["type"] == "exec" and "not-make" in e["argv"] for e in events)
