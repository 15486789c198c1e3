"""--cgroup and --container on the whole machine, live: proctrace traces every
process (no -- COMMAND), and the filter alone must narrow it to the processes
this test put in a cgroup it made: those, their children, a cgroup made under
it after the session began, and a container-named cgroup made after it began.
A twin process outside the cgroup, doing the same, must not appear.

Only processes started here are touched, by pid; only cgroups made here are
written to, and removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from proctrace.model.cgroups import unified_mount

from tests.environment import requires
from tests.live.conftest import Tracer

pytestmark = pytest.mark.live

# Waits for a line on stdin, then runs `true` three times, each in a child,
# then exits: every process of it is known exactly.
WORKLOAD = (
    "import os, sys\n"
    "sys.stdin.readline()\n"
    "for _ in range(3):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.execv('/bin/true', ['true', 'pt-cgroup-filter'])\n"
    "    os.waitpid(pid, 0)\n"
)


@pytest.fixture
def cgroup_dir() -> Iterator[Path]:
    """A cgroup made for the test under the unified hierarchy; it and every
    cgroup the test made below it are removed afterwards, deepest first."""
    mount = unified_mount()
    requires(os.geteuid() == 0 and mount is not None, "needs root and a cgroup2 mount")
    assert mount is not None
    top = Path(mount) / f"proctrace-filter-{uuid.uuid4().hex[:8]}"
    top.mkdir()
    try:
        yield top
    finally:
        for directory in sorted((p for p in top.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            directory.rmdir()


def start_workload() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE)


def go(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def processes_of(events: list[dict], root: int) -> set[int]:
    """`root` and every process it forked, by the fork events."""
    tree = {root}
    for ev in events:
        if ev["type"] == "fork" and not ev["thread"] and ev["tgid"] in tree:
            tree.add(ev["child_tgid"])
    return tree


def test_cgroup_selects_its_processes_and_a_cgroup_made_under_it_later(cgroup_dir: Path, tmp_path: Path) -> None:
    group = cgroup_dir
    inside, outside = start_workload(), start_workload()
    (group / "cgroup.procs").write_text(str(inside.pid))
    tracer = Tracer(tmp_path / "out.jsonl", "--cgroup", f"/{group.name}")
    # Made after the session began: in by being below the selected cgroup.
    later = group / "later"
    later.mkdir()
    late = start_workload()
    (later / "cgroup.procs").write_text(str(late.pid))
    for proc in (inside, outside, late):
        go(proc)
    events = tracer.stop()

    by_process: dict[int, list[str]] = {}
    for ev in events:
        if ev["type"] in ("fork", "exec", "exit", "reap"):
            by_process.setdefault(ev["tgid"], []).append(ev["type"])
    for root in (inside.pid, late.pid):
        tree = processes_of(events, root)
        assert len(tree) == 4, f"{root}: expected itself and 3 children, got {tree}"
        children = tree - {root}
        for child in children:
            assert by_process[child] == ["exec", "exit"], (child, by_process[child])
        assert by_process[root].count("fork") == 3 and by_process[root].count("reap") == 3
    seen = {ev["tgid"] for ev in events}
    assert outside.pid not in seen
    ids = {os.stat(group).st_ino, os.stat(later).st_ino}
    ours = processes_of(events, inside.pid) | processes_of(events, late.pid)
    assert {ev["cgroup_id"] for ev in events if ev["tgid"] in ours} <= ids
    # What others did is there only when it is about ours: our parent (this test) reaping them.
    others = [ev for ev in events if ev["tgid"] not in ours and ev["type"] != "cgroup"]
    assert all(ev["type"] in ("reap", "signal") and ev["tgid"] == os.getpid() for ev in others), others
    assert all(ev["cgroup"] == f"/{group.name}/later" for ev in events if ev["type"] == "exec" and ev["tgid"] in
               processes_of(events, late.pid))  # fmt: skip


def test_container_selects_a_container_cgroup_made_after_the_session_began(cgroup_dir: Path, tmp_path: Path) -> None:
    container_id = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits
    parent = cgroup_dir
    tracer = Tracer(tmp_path / "out.jsonl", "--container", container_id[:12])
    scope = parent / f"docker-{container_id}.scope"
    scope.mkdir()
    inside, outside = start_workload(), start_workload()
    (scope / "cgroup.procs").write_text(str(inside.pid))
    (parent / "cgroup.procs").write_text(str(outside.pid))  # next to it, not in it
    for proc in (inside, outside):
        go(proc)
    events = tracer.stop()
    tree = processes_of(events, inside.pid)
    assert len(tree) == 4, tree
    execs = [ev for ev in events if ev["type"] == "exec" and ev["tgid"] in tree]
    assert len(execs) == 3 and all(ev["container_id"] == container_id for ev in execs)
    assert all(ev["unit"] == f"docker-{container_id}.scope" for ev in execs)
    assert outside.pid not in {ev["tgid"] for ev in events}
