"""The processes alive as the events tell it (tracer/model/live_processes.py),
from which a rotated recording's later parts take their snapshot."""

from __future__ import annotations

from proctrace.model.events import CLONE_THREAD
from proctrace.model.live_processes import LiveProcesses
from proctrace.model.procsnap import ProcInfo

from tests.synthetic import INIT, MS, SHELL, SHELL_START, context, cred, creds, execve, exit_, fork, reap

SHELL_CONTEXT = context(b"/home/u", now=creds(1000))
SNAPSHOT = [ProcInfo(SHELL, INIT, 1000, b"sh", [b"sh", b"-i"], SHELL_START, context=SHELL_CONTEXT)]


def pids(live: LiveProcesses) -> list[int]:
    return [p.pid for p in live.snapshot()]


def test_a_child_is_in_from_its_fork_with_its_parents_image_until_it_execs() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 200)])
    child = live.snapshot()[1]
    assert (child.pid, child.ppid, child.argv, child.start_ns, child.context) == (
        200, SHELL, [b"sh", b"-i"], 10 * MS, SHELL_CONTEXT,
    )  # fmt: skip
    exec_context = context(b"/tmp")
    live.write([execve(11 * MS, 200, 10 * MS - 3000, [b"make", b"-j2"], context=exec_context)])
    child = live.snapshot()[1]
    assert (child.comm, child.argv, child.start_ns, child.context) == (
        b"make",
        [b"make", b"-j2"],
        10 * MS - 3000,
        exec_context,
    )


def test_a_failed_exec_changes_nothing() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 200), execve(11 * MS, 200, 10 * MS, [b"nope"], errno=2)])
    assert live.snapshot()[1].argv == [b"sh", b"-i"]


def test_a_zombie_stays_until_its_reap() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 200), exit_(12 * MS, 200, 10 * MS)])
    assert pids(live) == [SHELL, 200]
    live.write([reap(13 * MS, 200)])
    assert pids(live) == [SHELL]


def test_threads_are_counted_and_a_thread_exec_leaves_one() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 201, flags=CLONE_THREAD), fork(10 * MS + 1, 202, flags=CLONE_THREAD)])
    assert (len(live), live.snapshot()[0].threads) == (1, 3)
    live.write([exit_(11 * MS, 202, SHELL_START, tgid=SHELL, process=False)])
    assert live.snapshot()[0].threads == 2
    live.write([execve(12 * MS, SHELL, SHELL_START, [b"sh"], old_pid=201, ppid=INIT)])
    assert live.snapshot()[0].threads == 1


def test_a_fork_to_a_pid_still_held_replaces_the_holder_whose_reap_was_lost() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 200), execve(11 * MS, 200, 10 * MS, [b"old"]), fork(50 * MS, 200)])
    (child,) = [p for p in live.snapshot() if p.pid == 200]
    assert (child.start_ns, child.argv) == (50 * MS, [b"sh", b"-i"])


def test_a_process_the_start_missed_is_in_from_its_exec() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([execve(11 * MS, 300, 2 * MS, [b"cron"], ppid=INIT)])
    assert [(p.pid, p.ppid, p.start_ns) for p in live.snapshot()] == [(300, INIT, 2 * MS), (SHELL, INIT, SHELL_START)]


def test_a_change_of_credentials_is_kept_without_touching_the_exec_it_came_from() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([cred(20 * MS, SHELL, SHELL_START, creds(1000), creds(0, uid=0), ppid=INIT)])
    (shell,) = live.snapshot()
    assert shell.uid == 0 and shell.context is not None and shell.context.creds == creds(0, uid=0)
    assert SHELL_CONTEXT.creds == creds(1000) and SNAPSHOT[0].uid == 1000  # the session's snapshot is its own


def test_an_adopted_process_has_its_new_parent() -> None:
    live = LiveProcesses(SNAPSHOT)
    live.write([fork(10 * MS, 200), fork(11 * MS, 201, by=200, start=10 * MS, ppid=SHELL)])
    live.write([exit_(12 * MS, 200, 10 * MS), reap(13 * MS, 200)])
    live.write([fork(14 * MS, 202, by=201, start=11 * MS, ppid=INIT)])  # 201 forks: its parent is init now
    assert {p.pid: p.ppid for p in live.snapshot()} == {SHELL: INIT, 201: INIT, 202: 201}
