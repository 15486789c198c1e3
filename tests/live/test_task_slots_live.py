"""The per-task notes (a syscall's saved arguments, clone flags, waited-for
marks) live in arrays indexed by the task id's low bits, each slot holding the
id it is about (bpf/proctrace.bpf.c, PT_TASK_SLOTS). Sized from pid_max, every
id has a slot of its own; where pid_max is larger than the arrays, ids share
slots, and the notes are kept in hash maps instead. These tests load the
programs with a single slot, so that every task shares it, and check the
promise the slots make: a note found in a slot is never taken for another
task's; and load the hash maps' version, which must be exact. The independent
sources are the workload's own waitpid() statuses and the paths it passed to
execve."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from proctrace.kernel.probe import Probe
from proctrace.kernel.program import WAIT_SYSCALL_NUMBERS, ProgramOptions
from proctrace.model.events import Event, ExecEvent, ForkEvent, ReapEvent

pytestmark = pytest.mark.live

CHILDREN = 24

# Each child tries an execve that fails (a path of its own), then execs a
# shell that exits with the child's number; the parent waits for each and
# prints "pid status" as waitpid() returned them. The children run at once,
# so their execve entries and the parent's waits overwrite the one slot.
WORKLOAD = f"""
import os, sys
sys.stdin.readline()
pids = []
for i in range({CHILDREN}):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/nonexistent/ptslot-%d" % i, ["ptslot", str(i)])
        except OSError:
            pass
        os.execv("/bin/sh", ["sh", "-c", "exit %d" % i])
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    print(pid, status, flush=True)
"""


@pytest.fixture(scope="module", params=[1, 0], ids=["one-shared-slot", "hash-maps"])
def probe_with(request: pytest.FixtureRequest) -> Iterator[tuple[Probe, int]]:
    """The programs with one slot for every task, and with the hash maps a
    pid_max above 65536 gets (task_slots 0)."""
    probe = Probe(ProgramOptions(task_slots=request.param))
    try:
        yield probe, request.param
    finally:
        probe.close()


def collect(probe: Probe, done: subprocess.Popen) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        batch, errors = probe.drain()
        assert not errors, errors
        seen += batch
        if done.poll() is not None:
            time.sleep(0.3)  # the last frees come a grace period after the reaps
            batch, errors = probe.drain()
            assert not errors, errors
            return seen + batch
        time.sleep(0.02)
    raise AssertionError("the workload did not finish")


def test_a_shared_slot_never_lends_one_tasks_note_to_another(probe_with: tuple[Probe, int]) -> None:
    probe, slots = probe_with
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdin is not None
        parent.stdin.write("go\n")
        parent.stdin.close()
        seen = collect(probe, parent)
        out = parent.stdout.read() if parent.stdout else ""
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait()
    waited = {int(pid): int(status) for pid, status in (line.split() for line in out.splitlines())}
    assert len(waited) == CHILDREN
    children = {ev.child_pid for ev in seen if isinstance(ev, ForkEvent) and ev.tgid == parent.pid}
    assert children == set(waited)
    # The clone flags came through the slot: every child is a process, not a thread.
    assert all(not ev.thread for ev in seen if isinstance(ev, ForkEvent) and ev.child_pid in children)

    # A failed exec's path and arguments are read through what its own entry
    # saved: another child's would name another number.
    failed = [ev for ev in seen if isinstance(ev, ExecEvent) and ev.failed and ev.tgid in children]
    assert failed, "no failed exec was reported at all: the slot never held a note to the end"
    for ev in failed:
        assert ev.filename.startswith(b"/nonexistent/ptslot-"), ev.filename
        number = ev.filename.removeprefix(b"/nonexistent/ptslot-")
        assert ev.argv == [b"ptslot", number]
        assert ev.errno == 2

    # A reap's status is read through the wait's own arguments: with one
    # slot, where a child's execve took it meanwhile, from the registers.
    if slots == 1 and platform.machine() not in WAIT_SYSCALL_NUMBERS:
        pytest.skip(f"no argument registers known for {platform.machine()}: a wait whose slot was taken goes unseen")
    reaps = {ev.reaped_pid: ev for ev in seen if isinstance(ev, ReapEvent) and not ev.autoreaped}
    for pid, status in waited.items():
        assert pid in reaps, f"no reap of {pid}"
        assert reaps[pid].tgid == parent.pid
        assert reaps[pid].status.raw == status
        assert os.WEXITSTATUS(status) == reaps[pid].status.exit_code
