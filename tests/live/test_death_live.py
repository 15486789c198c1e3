"""What ended a process, live: the process that sent its fatal signal, the
kernel when a fault killed it, the OOM killer in a memory cgroup this test
makes with a small limit. The independent sources: the killer's pid as this
test started it, and the kernel log's oom-kill line.

Only processes started here are signalled, by pid; only the cgroup made here
is written to, and it is removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.environment import requires
from tests.live.conftest import ROOT, run_proctrace

pytestmark = pytest.mark.live

# A child that waits to be killed; the parent starts a killer process (kill(1))
# aimed at it, prints both pids, and waits for both.
KILL_WORKLOAD = """
import subprocess, sys
victim = subprocess.Popen(["/bin/sleep", "30"])
killer = subprocess.Popen(["/bin/kill", "-TERM", str(victim.pid)])
killer.wait()
victim.wait()
print(victim.pid, killer.pid, flush=True)
"""


def test_an_exit_by_sigterm_names_the_process_that_sent_it(tmp_path: Path) -> None:
    trace = run_proctrace(tmp_path, [sys.executable, "-c", KILL_WORKLOAD])
    assert trace.returncode == 0, trace.stderr
    sleeps = trace.execs_of("/bin/sleep")
    kills = trace.execs_of("/bin/kill")
    assert len(sleeps) == 1 and len(kills) == 1
    victim, killer = sleeps[0]["tgid"], kills[0]["tgid"]
    assert trace.stdout.split() == [str(victim), str(killer)]  # what the workload itself saw
    death = trace.process_exit(victim)
    assert (death["signal"], death["killed_by_pid"], death["killed_by_comm"]) == ("SIGTERM", killer, "kill")
    assert death["oom_killed"] is False
    # Nothing killed the others.
    assert trace.process_exit(killer)["killed_by_pid"] is None


def test_a_crash_has_no_killing_process(tmp_path: Path) -> None:
    trace = run_proctrace(tmp_path, [sys.executable, "-c", "import ctypes; ctypes.string_at(0)"])
    crash = trace.process_exit(trace.of_type("exec")[0]["tgid"])
    assert crash["signal"] == "SIGSEGV"
    assert (crash["killed_by_pid"], crash["killed_by_comm"], crash["oom_killed"]) == (None, None, False)


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A memory cgroup with a 50 MiB limit: cgroup v1's memory controller
    where it is mounted (this machine), else the unified hierarchy's."""
    v1 = Path("/sys/fs/cgroup/memory")
    name = f"proctrace-oom-{uuid.uuid4().hex[:8]}"
    if (v1 / "memory.limit_in_bytes").exists():
        group = v1 / name
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(50 << 20))
    else:
        from proctrace.model.cgroups import unified_mount

        mount = unified_mount()
        requires(
            mount is not None and "memory" in Path(mount, "cgroup.controllers").read_text(), "needs a memory cgroup"
        )
        assert mount is not None
        group = Path(mount) / name
        group.mkdir()
        (group / "memory.max").write_text(str(50 << 20))
        (group / "memory.swap.max").write_text("0")
    try:
        yield group
    finally:
        group.rmdir()


# Waits for its cgroup to be set, then allocates 200 MiB, touching every page.
OOM_WORKLOAD = """
import sys
sys.stdin.readline()
block = bytearray(200 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
"""


def test_the_oom_killers_victim_says_so(tmp_path: Path, memory_cgroup: Path) -> None:
    requires(os.geteuid() == 0, "needs root")
    # The workload enters the cgroup itself (by writing its own pid), so the
    # traced command is the victim, and nothing else of the session is in it.
    # It runs in a child of the limited cgroup: the kernel names the parent as
    # the one out of memory, and so must proctrace.
    child = memory_cgroup / "job"
    child.mkdir()
    try:
        _oom_in(child, memory_cgroup, tmp_path)
    finally:
        child.rmdir()


def _oom_in(child: Path, memory_cgroup: Path, tmp_path: Path) -> None:
    code = f"import os; open({str(child / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n" + OOM_WORKLOAD
    dmesg_before = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.count("oom-kill:")
    out, recording = tmp_path / "events.jsonl", tmp_path / "oom.rec"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "proctrace",
            "--json",
            "-o",
            str(out),
            "-w",
            str(recording),
            "--",
            sys.executable,
            "-c",
            code,
        ],
        input="go\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    victim = next(e for e in events if e["type"] == "exec" and e["argv"][:2] == [sys.executable, "-c"])
    death = next(e for e in events if e["type"] == "exit" and e["process_exit"] and e["tgid"] == victim["tgid"])
    assert death["signal"] == "SIGKILL", (death, proc.stderr)
    assert death["oom_killed"] is True
    assert death["killed_by_pid"] is None  # the kernel sent it
    # The memory cgroup out of memory is the one this test made (either
    # hierarchy: it sits at the root of its mount).
    assert death["oom_memcg"] == f"/{memory_cgroup.name}", death
    # The kernel log says the same, for this pid.
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    assert log.count("oom-kill:") > dmesg_before
    summary = log.rsplit("oom-kill:", 1)[1]
    assert f"pid={victim['tgid']}," in summary
    assert f"task_memcg=/{memory_cgroup.name}/{child.name}," in summary  # the victim was in the child
    # And so does the stream, read back from the recording.
    text = subprocess.run(
        [sys.executable, "-m", "proctrace", "-r", str(recording), "--color", "never"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    line = next(li for li in text.splitlines() if f" {victim['tgid']} " in li and " exit " in li)
    assert f"process killed by the OOM killer in memory cgroup /{memory_cgroup.name} (SIGKILL)" in line, line
