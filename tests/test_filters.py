"""The filters' selection rules, on synthetic event streams (no root)."""

from __future__ import annotations

import pytest
from proctrace.model.events import (
    CLONE_THREAD,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
)
from proctrace.model.filters import EventFilter, FilterError, FilterSpec, parse_kinds
from proctrace.model.procsnap import ProcInfo

_ts = iter(range(1_000, 10**9, 1_000))


def common(pid: int, tgid: int | None = None, ppid: int = 1, comm: bytes = b"sh", uid: int = 0) -> tuple:
    return (next(_ts), pid, tgid if tgid is not None else pid, ppid, uid, comm, 0, 0)


def fork(parent: int, child: int, *, thread: bool = False, comm: bytes = b"sh") -> ForkEvent:
    return ForkEvent(
        *common(parent, comm=comm),
        child_pid=child,
        child_tgid=parent if thread else child,
        child_ppid=parent,
        clone_flags=CLONE_THREAD if thread else 0,
    )


def exec_(pid: int, filename: bytes, comm: bytes | None = None, errno: int = 0, uid: int = 0) -> ExecEvent:
    name = comm if comm is not None else filename.rsplit(b"/", 1)[-1][:15]
    return ExecEvent(*common(pid, comm=name, uid=uid), filename=filename, argv=[name], errno=errno, old_pid=pid)


def exit_(pid: int, tgid: int | None = None, process: bool = True, comm: bytes = b"sh") -> ExitEvent:
    return ExitEvent(*common(pid, tgid, comm=comm), status=WaitStatus(0), process_exit=process)


def reap(reaper: int, reaped: int) -> ReapEvent:
    return ReapEvent(*common(reaper), reaped_pid=reaped, status=WaitStatus(0))


def signal_to(sender: int, target: int) -> SignalEvent:
    return SignalEvent(*common(sender), stage=SIGNAL_GENERATE, signo=15, target_pid=target)


def shown(spec: FilterSpec, events: list, snapshot: list[ProcInfo] | None = None) -> list:
    f = EventFilter(spec)
    if snapshot:
        f.seed(snapshot)
    return f(events)


def test_no_filter_shows_everything():
    events = [fork(10, 11), exec_(11, b"/bin/ls"), exit_(11), reap(10, 11)]
    assert shown(FilterSpec(), events) == events


def test_comm_selects_from_the_matching_exec_on_and_not_the_forker():
    events = [fork(10, 11), exec_(11, b"/usr/bin/make"), fork(11, 12), exec_(12, b"/bin/sh"), exit_(12), exit_(11)]
    out = shown(FilterSpec(comms=("make",)), events)
    # make's exec, its fork of 12 (about make), its exit; not sh's life.
    assert out == [events[1], events[2], events[5]]


def test_follow_selects_descendants_forked_after_the_match():
    events = [exec_(11, b"/usr/bin/make"), fork(11, 12), exec_(12, b"/bin/sh"), fork(12, 13), exit_(13), exit_(12)]
    assert shown(FilterSpec(comms=("make",), follow=True), events) == events


def test_unrelated_processes_stay_hidden_under_follow():
    events = [exec_(11, b"/usr/bin/make"), fork(20, 21), exec_(21, b"/usr/bin/curl"), exit_(21)]
    assert shown(FilterSpec(comms=("make",), follow=True), events) == [events[0]]


def test_pattern_longer_than_comm_matches_the_exec_basename():
    long_name = b"a-very-long-program-name"
    ev = exec_(11, b"/opt/" + long_name, comm=long_name[:15])
    assert shown(FilterSpec(comms=(long_name.decode(),)), [ev]) == [ev]
    # The cut comm alone does not stand for a different long name.
    other = exec_(12, b"/opt/a-very-long-program-other", comm=long_name[:15])
    assert shown(FilterSpec(comms=(long_name.decode(),)), [other]) == []


def test_glob_and_regex_patterns():
    evs = [exec_(11, b"/usr/bin/gcc-12"), exec_(12, b"/usr/bin/clang")]
    assert shown(FilterSpec(comms=("gcc*",)), evs) == [evs[0]]
    assert shown(FilterSpec(comms=("^cl.ng$",), regex=True), evs) == [evs[1]]


def test_invalid_regex_is_a_filter_error():
    with pytest.raises(FilterError, match="invalid regular expression"):
        EventFilter(FilterSpec(comms=("a(",), regex=True))


def test_failed_exec_does_not_select():
    ev = exec_(11, b"/nonexistent/make", errno=2)
    assert shown(FilterSpec(comms=("make",)), [ev]) == []


def test_pid_selects_and_follow_takes_its_subtree():
    events = [fork(50, 51), exec_(51, b"/bin/x"), fork(51, 52), exit_(52)]
    assert shown(FilterSpec(pids=(50,)), events) == [events[0]]
    assert shown(FilterSpec(pids=(50,), follow=True), events) == events


def test_signal_shown_when_target_selected_and_reap_when_reaped_selected():
    events = [exec_(11, b"/usr/bin/make"), signal_to(99, 11), exit_(11), reap(1, 11), reap(1, 12)]
    assert shown(FilterSpec(comms=("make",)), events) == events[:4]


def folded(sender: int, target: int) -> SignalSummaryEvent:
    return SignalSummaryEvent(*common(sender), signo=17, target_pid=target, count=500)


def test_a_signal_summary_is_shown_like_the_signals_it_counts():
    """About a selected sender or target; a signal, for -e."""
    events = [exec_(11, b"/usr/bin/strace"), folded(12, 11), folded(11, 40), folded(12, 13)]
    assert shown(FilterSpec(comms=("strace",)), events) == events[:3]
    assert shown(FilterSpec(kinds=frozenset({"signal"})), events) == events[1:]
    assert shown(FilterSpec(kinds=frozenset({"exec"})), events) == events[:1]


def test_reaped_pid_leaves_the_selection_so_a_reused_pid_is_not_selected():
    events = [exec_(11, b"/usr/bin/make"), exit_(11), reap(1, 11), fork(30, 11), exec_(11, b"/bin/ls")]
    assert shown(FilterSpec(comms=("make",)), events) == events[:3]


def test_thread_exit_leaves_the_selection_by_tid():
    events = [
        exec_(11, b"/usr/bin/make"),
        fork(11, 15, thread=True),
        exit_(15, tgid=11, process=False),
        signal_to(99, 15),
    ]
    out = shown(FilterSpec(pids=(11,), follow=True), events)
    assert out == events[:3]


def test_pre_existing_process_with_matching_name_is_selected():
    snap = [ProcInfo(pid=40, ppid=1, uid=0, comm=b"make", argv=[b"make", b"-j2"])]
    events = [fork(40, 41), exit_(40)]
    assert shown(FilterSpec(comms=("make",)), events, snap) == events


def test_kinds_uid_exclude_and_no_threads_narrow_the_shown_events():
    events = [
        fork(10, 11),
        fork(10, 12, thread=True),
        exec_(11, b"/bin/ls", uid=1000),
        exec_(13, b"/usr/bin/cc1"),
        exit_(12, tgid=10, process=False),
        exit_(11),
    ]
    assert shown(FilterSpec(kinds=frozenset({"exec"})), events) == [events[2], events[3]]
    assert shown(FilterSpec(uids=(1000,)), events) == [events[2]]
    assert shown(FilterSpec(exclude=("cc1",)), events) == [e for e in events if e is not events[3]]
    assert shown(FilterSpec(no_threads=True), events) == [events[0], events[2], events[3], events[5]]


def test_selection_state_advances_on_events_that_are_not_shown():
    # -e exit hides the exec, but the exec still selects the process.
    events = [exec_(11, b"/usr/bin/make"), exit_(11)]
    assert shown(FilterSpec(comms=("make",), kinds=frozenset({"exit"})), events) == [events[1]]


def test_deliver_is_about_the_receiver():
    ev = SignalEvent(*common(11), stage=SIGNAL_DELIVER, signo=19, target_pid=11)
    assert shown(FilterSpec(pids=(11,)), [ev]) == [ev]
    assert shown(FilterSpec(pids=(12,)), [ev]) == []


def test_parse_kinds_rejects_unknown_and_empty():
    assert parse_kinds("exec, exit") == {"exec", "exit"}
    with pytest.raises(FilterError, match="unknown event kind"):
        parse_kinds("exec,forks")
    with pytest.raises(FilterError):
        parse_kinds(",")


def test_only_plain_names_are_left_to_the_kernel():
    assert FilterSpec(comms=("make", "a-very-long-program-name")).literal_comms
    assert FilterSpec(comms=("make", "a-very-long-program-name")).kernel_names() == [b"a-very-long-pro", b"make"]
    assert not FilterSpec(comms=("gcc*",)).literal_comms
    assert not FilterSpec(comms=("make",), regex=True).literal_comms
