"""tests/strace_agreement.py on a canned strace log and canned proctrace events: agreement
passes, and each way of disagreeing fails with the fact and where it was seen."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.strace_agreement import Agreement, agree, fact_kinds, losses
from tests.strace_log import parse_strace_log

STRACE_PID, PROBE, TRACEE, CHILD, KILLED = 100, 150, 200, 201, 202
FORK = "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f)"


def hx(text: str) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in text.encode()) + '"'


def execve(path: str, *argv: str) -> str:
    return f"execve({hx(path)}, [{', '.join(hx(a) for a in argv)}], 0x7ffc /* 3 vars */)"


STRACE_LOG = [
    f"{TRACEE} {execve('/usr/bin/python3', 'python3', 'w.py')} = 0",
    f"{TRACEE} {FORK} = {CHILD}",
    f"{CHILD} {execve('/nonexistent/true', 'true')} = -1 ENOENT (No such file or directory)",
    f"{CHILD} {execve('/usr/bin/true', 'true')} = 0",
    f"{CHILD} +++ exited with 3 +++",
    f"{TRACEE} {FORK} = {KILLED}",
    # Killed inside execve: strace never sees how the call ended.
    f"{KILLED} {execve('/usr/bin/python3', 'python3', '-c', 'pass')} = ?",
    f"{KILLED} +++ killed by SIGKILL +++",
    f"{TRACEE} +++ exited with 0 +++",
]

_clock = itertools.count(1000)


def event(kind: str, pid: int, tgid: int | None = None, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "ts_ns": next(_clock), "pid": pid, "tgid": pid if tgid is None else tgid, **fields}


def exec_event(pid: int, filename: str, argv: list[str], errno: str | None = None) -> dict[str, Any]:
    flags = {"argv_truncated": False, "argv_unreadable": False, "filename_truncated": False}
    return event("exec", pid, filename=filename, argv=argv, errno=errno, old_pid=None, **flags)


def fork_event(parent: int, child: int) -> dict[str, Any]:
    return event("fork", parent, child_pid=child, child_tgid=child, thread=False)


def exit_event(pid: int, code: int | None = None, signal: str | None = None) -> dict[str, Any]:
    return event("exit", pid, exit_code=code, signal=signal, core_dumped=False, process_exit=True)


def proctrace_events() -> list[dict[str, Any]]:
    return [
        exec_event(STRACE_PID, "/usr/bin/strace", ["strace", "-f"]),
        fork_event(STRACE_PID, PROBE),  # strace's ptrace probe: not a tracee
        exit_event(PROBE, signal="SIGKILL"),
        fork_event(STRACE_PID, TRACEE),
        exec_event(TRACEE, "/usr/bin/python3", ["python3", "w.py"]),
        fork_event(TRACEE, CHILD),
        exec_event(CHILD, "/nonexistent/true", ["true"], errno="ENOENT"),
        exec_event(CHILD, "/usr/bin/true", ["true"]),
        exit_event(CHILD, code=3),
        fork_event(TRACEE, KILLED),
        exec_event(KILLED, "/usr/bin/python3", ["python3", "-c", "pass"]),
        exit_event(KILLED, signal="SIGKILL"),
        exit_event(TRACEE, code=0),
        exit_event(STRACE_PID, code=0),
    ]


def agreement(events: list[dict[str, Any]]) -> Agreement:
    log = parse_strace_log(STRACE_LOG)
    assert log.first_pid == TRACEE
    binaries = {b"/usr/bin/python3": b"\x7fELF", b"/usr/bin/true": b"\x7fELF"}
    return agree(log, events, STRACE_PID, binaries.get)


def test_the_same_facts_agree():
    result = agreement(proctrace_events())
    assert result.disagreements == []
    assert result.unseen_outcomes == 1
    assert result.argvs_compared == 4


def test_a_lost_exit_is_a_fact_only_strace_saw():
    events = [e for e in proctrace_events() if not (e["type"] == "exit" and e["pid"] == CHILD)]
    assert agreement(events).disagreements == [
        f"process_exits: only strace saw ({CHILD}, 3, None, False) x1 at strace.log:5",
        f"task_ends: only strace saw {CHILD} x1 at strace.log:5",
    ]


def test_an_exec_strace_did_not_see_is_a_fact_only_proctrace_saw():
    events = proctrace_events()
    events.insert(8, exec_event(CHILD, "/usr/bin/false", ["false"]))
    (problem,) = agreement(events).disagreements
    assert problem.startswith(f"execs: only proctrace saw ({CHILD}, None, b'/usr/bin/false', None) x1 at ts_ns")


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("errno", "EACCES", "'EACCES'"),
        ("filename", "/nonexistent/false", "b'/nonexistent/false'"),
        ("pid", KILLED, f"({KILLED}, None, b'/nonexistent/true', 'ENOENT')"),
    ],
)
def test_a_failed_exec_must_agree_in_caller_name_and_errno(field, value, shown):
    events = proctrace_events()
    failed = next(e for e in events if e["type"] == "exec" and e["errno"])
    failed[field] = value
    if field == "pid":
        failed["tgid"] = value
    problems = agreement(events).disagreements
    assert any("only proctrace saw" in p and shown in p for p in problems), problems
    assert any(
        p.startswith(f"execs: only strace saw ({CHILD}, None, b'/nonexistent/true', 'ENOENT')") for p in problems
    )


def test_an_exit_status_must_agree():
    events = proctrace_events()
    child_exit = next(e for e in events if e["type"] == "exit" and e["pid"] == CHILD)
    child_exit.update(exit_code=None, signal="SIGTERM")
    problems = agreement(events).disagreements
    assert f"process_exits: only proctrace saw ({CHILD}, None, 'SIGTERM', False) x1 at ts_ns {child_exit['ts_ns']}" in (
        problems
    )


def test_an_argv_must_agree():
    events = proctrace_events()
    next(e for e in events if e["type"] == "exec" and e["pid"] == TRACEE)["argv"] = ["python3", "x.py"]
    assert agreement(events).disagreements == [
        f"argv of exec ({TRACEE}, None, b'/usr/bin/python3', None): "
        "strace (b'python3', b'w.py'), proctrace (b'python3', b'x.py')"
    ]


def test_an_argv_proctrace_says_it_cut_is_not_compared():
    events = proctrace_events()
    cut = next(e for e in events if e["type"] == "exec" and e["pid"] == TRACEE)
    cut.update(argv=["python3"], argv_truncated=True)
    result = agreement(events)
    assert (result.disagreements, result.argvs_cut) == ([], 1)


def test_an_unseen_outcome_may_be_a_failure_of_the_same_call():
    events = proctrace_events()
    killed_exec = next(e for e in events if e["type"] == "exec" and e["pid"] == KILLED)
    killed_exec.update(errno="EINTR")
    assert agreement(events).disagreements == []


def test_an_unseen_outcome_is_not_settled_by_another_tasks_exec():
    events = [e for e in proctrace_events() if not (e["type"] == "exec" and e["pid"] == KILLED)]
    problems = agreement(events).disagreements
    assert problems == [
        f"execs: only strace saw ({KILLED}, None, b'/usr/bin/python3', '?') x1 at strace.log:7 (`= ?`: "
        "outcome taken from proctrace)"
    ]


def test_a_probe_of_strace_that_execs_is_an_error():
    events = proctrace_events()
    events.insert(2, exec_event(PROBE, "/bin/true", ["true"]))
    with pytest.raises(AssertionError, match="probing child"):
        agreement(events)


def test_a_probes_pid_reused_by_a_tracee_is_the_tracees():
    events = proctrace_events()
    events.insert(-2, fork_event(TRACEE, PROBE))
    events.insert(-2, exit_event(PROBE, code=0))
    problems = agreement(events).disagreements
    assert problems == [
        f"forks: only proctrace saw ({TRACEE}, {PROBE}, False) x1 at ts_ns {events[-4]['ts_ns']}",
        f"process_exits: only proctrace saw ({PROBE}, 0, None, False) x1 at ts_ns {events[-3]['ts_ns']}",
        f"task_ends: only proctrace saw {PROBE} x1 at ts_ns {events[-3]['ts_ns']}",
    ]


def test_losses_without_a_class_or_of_lifecycle_are_lifecycle_losses():
    lost = [
        {"type": "lost", "count": 5, "total": 5},
        {"type": "lost", "count": 7, "total": 12, "class": "signal"},
        {"type": "lost", "count": 2, "total": 14, "class": "lifecycle"},
    ]
    counted = losses(proctrace_events() + lost)
    assert (counted.lifecycle_events, counted.signal_events) == (7, 7)
    assert counted.lifecycle == [lost[0], lost[2]]
    assert losses(proctrace_events()).lifecycle == []


def test_fact_kinds_count_path_searches_failures_and_deaths():
    kinds = fact_kinds(parse_strace_log(STRACE_LOG))
    assert (kinds["path search"], kinds["ENOENT"], kinds["not found"]) == (1, 1, 0)
    assert (kinds["process"], kinds["killed"], kinds["exit code != 0"]) == (3, 1, 1)
