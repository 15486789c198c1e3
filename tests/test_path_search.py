"""The PATH search rule (tracer/model/path_search.py): which failed execs are
misses of a search that found its file, decided with the lookahead a source
has, and the tally of misses the exec ending a search reports."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proctrace.model.events import Event, ExecEvent
from proctrace.model.ordering import SUBMIT_MARGIN_NS, Reorderer
from proctrace.model.path_search import (
    PATH_SEARCH_HORIZON_NS,
    PendingMisses,
    count_path_miss,
    mark_path_searches,
    take_path_misses,
)

from tests.synthetic import MS, SHELL_START, execve, fork

US = 1_000
CC = 500  # the process that searches PATH
START = SHELL_START


def attempt(ts: int, directory: bytes, name: bytes = b"as", *, pid: int = CC, err: int = errno.ENOENT) -> ExecEvent:
    return execve(ts, pid, START, [name], errno=err, filename=directory + b"/" + name)


def found(ts: int, name: bytes = b"as", *, pid: int = CC, directory: bytes = b"/usr/bin") -> ExecEvent:
    return execve(ts, pid, START, [name, b"--64"], filename=directory + b"/" + name)


def search(t0: int, name: bytes = b"as", *, pid: int = CC) -> list[Event]:
    """cc's driver looking for `name` along a PATH of five directories, the fifth holding it."""
    misses = [
        attempt(t0 + i * 5 * US, d, name, pid=pid)
        for i, d in enumerate([b"/usr/local/bin", b"/root/.cargo/bin", b"/opt/bin", b"/usr/local/sbin"])
    ]
    return [*misses, found(t0 + 150 * US, name, pid=pid)]


def flags(events: list[Event]) -> list[bool]:
    return [ev.path_search for ev in events if type(ev) is ExecEvent and ev.errno]


def marked(events: list[Event]) -> list[bool]:
    mark_path_searches(events, ())
    return flags(events)


# --- the rule ------------------------------------------------------------------------


def test_a_chain_of_enoent_misses_that_ends_in_the_file_found_is_a_path_search() -> None:
    events = search(10 * MS)
    assert marked(events) == [True, True, True, True]
    assert events[-1].path_search is False  # the exec that found it is no miss


def test_a_command_found_nowhere_on_path_stays_a_failure_at_every_directory() -> None:
    events = search(10 * MS)[:-1]
    assert marked(events) == [False, False, False, False]


def test_a_failure_whose_next_exec_is_of_another_name_stays_a_failure() -> None:
    # The script gave up on "frobnicate" and ran the shell instead.
    events: list[Event] = [attempt(10 * MS, b"/opt/bin", b"frobnicate"), found(10 * MS + 100 * US, b"sh")]
    assert marked(events) == [False]


def test_an_attempt_of_another_name_in_between_ends_the_search() -> None:
    events: list[Event] = [
        attempt(10 * MS, b"/usr/local/bin", b"as"),
        attempt(10 * MS + 5 * US, b"/usr/local/bin", b"ld"),
        found(10 * MS + 100 * US, b"as"),
    ]
    assert marked(events) == [False, False]  # neither is followed by the exec of its own name


@pytest.mark.parametrize("err", [errno.ENOTDIR, errno.EACCES])
def test_enotdir_and_eacces_are_directories_a_search_goes_past(err: int) -> None:
    events: list[Event] = [attempt(10 * MS, b"/etc/passwd", err=err), found(10 * MS + 50 * US)]
    assert marked(events) == [True]


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOEXEC, errno.E2BIG, errno.ENOMEM, errno.ETXTBSY])
def test_any_other_errno_is_a_failure_even_when_the_name_is_found_next(err: int) -> None:
    events: list[Event] = [attempt(10 * MS, b"/usr/local/bin", err=err), found(10 * MS + 50 * US)]
    assert marked(events) == [False]


def test_an_attempt_with_another_errno_in_the_middle_breaks_the_chain_before_it() -> None:
    events: list[Event] = [
        attempt(10 * MS, b"/usr/local/bin"),
        attempt(10 * MS + 5 * US, b"/mnt/noexec", err=errno.EPERM),
        attempt(10 * MS + 10 * US, b"/opt/bin"),
        found(10 * MS + 50 * US),
    ]
    assert marked(events) == [False, False, True]


def test_a_name_that_is_not_a_path_or_was_cut_is_never_a_miss() -> None:
    bare = execve(10 * MS, CC, START, [b"as"], errno=errno.ENOENT, filename=b"as")
    cut = attempt(10 * MS + 5 * US, b"/very/long/dir")
    cut.filename_truncated = True
    events: list[Event] = [bare, cut, found(10 * MS + 50 * US)]
    assert marked(events) == [False, False]


def test_the_success_must_come_within_the_horizon_of_the_failed_exec() -> None:
    t0 = 10 * MS
    inside: list[Event] = [attempt(t0, b"/usr/local/bin"), found(t0 + PATH_SEARCH_HORIZON_NS)]
    outside: list[Event] = [attempt(t0, b"/usr/local/bin"), found(t0 + PATH_SEARCH_HORIZON_NS + 1)]
    assert marked(inside) == [True]
    assert marked(outside) == [False]


def test_a_long_search_folds_the_misses_within_the_horizon_of_its_success() -> None:
    t0 = 10 * MS
    events: list[Event] = [
        attempt(t0, b"/a"),
        attempt(t0 + 2 * MS, b"/b"),
        attempt(t0 + 4 * MS, b"/c"),
        found(t0 + PATH_SEARCH_HORIZON_NS + 1 * MS),
    ]
    assert marked(events) == [False, True, True]


def test_the_exec_of_another_process_or_thread_is_not_the_end_of_this_search() -> None:
    t0 = 10 * MS
    other_process = found(t0 + 50 * US, pid=CC + 1)
    other_thread = ExecEvent(
        t0 + 60 * US, CC, CC, 1, 0, b"as", START, 0, b"/usr/bin/as", [b"as"], old_pid=CC + 7
    )  # a thread of the same process that exec'd: its caller differs
    events: list[Event] = [attempt(t0, b"/usr/local/bin"), other_process, other_thread]
    assert marked(events) == [False]


def test_unrelated_events_in_between_do_not_break_a_search() -> None:
    t0 = 10 * MS
    events: list[Event] = [attempt(t0, b"/usr/local/bin"), fork(t0 + 2 * US, 900), found(t0 + 50 * US)]
    assert marked(events) == [True]


def test_interleaved_searches_of_two_processes_are_decided_apart() -> None:
    first, second = search(10 * MS, pid=CC), search(10 * MS + 1 * US, pid=CC + 1)[:-1]  # the second finds nothing
    events = sorted([*first, *second], key=lambda ev: ev.ts_ns)
    mark_path_searches(events, ())
    assert flags(first) == [True] * 4
    assert flags(second) == [False] * 4


def test_a_thread_that_searches_path_and_execs_is_one_task_across_its_pid_change() -> None:
    # A non-leader thread 507 of process 500: its failed execs carry its own tid;
    # the exec that succeeds takes the leader's pid and names 507 in old_pid.
    t0 = 10 * MS
    misses = [
        ExecEvent(t0, 507, CC, 1, 0, b"python3", START, 0, b"/nonexistent/true", [b"true"], errno=2, old_pid=507),
        ExecEvent(t0 + 5 * US, 507, CC, 1, 0, b"python3", START, 0, b"/opt/true", [b"true"], errno=2, old_pid=507),
    ]
    success = ExecEvent(t0 + 90 * US, CC, CC, 1, 0, b"true", START, 0, b"/usr/bin/true", [b"true"], old_pid=507)
    assert marked([*misses, success]) == [True, True]


def test_the_leader_s_exec_does_not_end_a_search_of_another_thread() -> None:
    t0 = 10 * MS
    thread_miss = ExecEvent(t0, 507, CC, 1, 0, b"py", START, 0, b"/opt/true", [b"true"], errno=2, old_pid=507)
    leader_exec = ExecEvent(t0 + 9 * US, CC, CC, 1, 0, b"true", START, 0, b"/usr/bin/true", [b"true"], old_pid=CC)
    assert marked([thread_miss, leader_exec]) == [False]


def test_marking_never_clears_a_decision_already_made() -> None:
    lone = attempt(10 * MS, b"/usr/local/bin")
    lone.path_search = True  # as a recording said it
    assert marked([lone]) == [True]


# --- the lookahead -------------------------------------------------------------------


def test_misses_in_one_batch_are_decided_by_a_success_still_in_the_lookahead() -> None:
    events = search(10 * MS)
    released, lookahead = events[:4], events[4:]
    mark_path_searches(released, lookahead)
    assert flags(released) == [True] * 4


def test_misses_split_across_drains_are_decided_before_their_success_is_released() -> None:
    # As the live source does: each drain's batch goes through the reorder window
    # and what it releases is decided with what the window still holds.
    window = Reorderer()
    t0 = 10 * MS
    events = search(t0)  # misses at t0 .. t0+15us, the success at t0+150us
    drains = [
        (events[:3], t0 + 12 * US),  # three misses have arrived; all wait in the window
        (events[3:], t0 + 100 * US + SUBMIT_MARGIN_NS),  # releases the misses, holds the success
    ]
    batches: list[list[Event]] = []
    for batch, drained_at in drains:
        released = window.push(batch, drained_at)
        mark_path_searches(released, window.pending)
        batches.append(released)
    batches.append(window.flush())
    mark_path_searches(batches[-1], ())
    assert batches == [[], events[:4], events[4:]]
    assert flags(events) == [True] * 4


def live_like(events: list[Event], drains: list[int]) -> list[bool]:
    """The flags the live source gives `events` (in order) when the drains start
    at `drains` and each finds every event stamped before it."""
    window, pending, out = Reorderer(), list(events), []
    for drained_at in sorted(drains):
        arrived = [ev for ev in pending if ev.ts_ns < drained_at]
        pending = pending[len(arrived) :]
        released = window.push(arrived, drained_at)
        mark_path_searches(released, window.pending)
        out += released
    released = window.flush() + pending
    mark_path_searches(released, ())
    return flags(out + released)


def copies(events: list[Event]) -> list[Event]:
    return [ExecEvent(**{f: getattr(ev, f) for f in ExecEvent.__dataclass_fields__}) for ev in events]  # type: ignore[arg-type]


gaps = st.lists(st.integers(1, 8 * MS), min_size=1, max_size=6)


@given(gaps, st.booleans(), st.lists(st.integers(0, 60 * MS), max_size=6))
def test_the_live_decision_is_the_one_made_with_every_event_in_view_as_far_as_the_window_sees(
    gaps_ns: list[int], ends_found: bool, drain_offsets: list[int]
) -> None:
    t, events = 10 * MS, []
    for i, gap in enumerate(gaps_ns):
        events.append(attempt(t, b"/d%d" % i))
        t += gap
    if ends_found:
        events.append(found(t))
    whole = copies(events)
    mark_path_searches(whole, ())
    live = live_like(copies(events), [10 * MS + d for d in drain_offsets])
    # The window only ever hides what comes after it: live never folds what the
    # whole stream would not, and whatever drains, it sees the reorder margin.
    assert all(whole_flag or not live_flag for live_flag, whole_flag in zip(live, flags(whole), strict=True))
    misses = [ev for ev in events if ev.errno]
    for live_flag, whole_flag, miss in zip(live, flags(whole), misses, strict=True):
        if ends_found and t - miss.ts_ns <= SUBMIT_MARGIN_NS:
            assert live_flag == whole_flag


def test_a_search_slower_than_the_margin_is_folded_when_its_exec_was_drained_in_time() -> None:
    t0 = 10 * MS
    slow = [attempt(t0, b"/usr/local/bin"), found(t0 + 9 * MS)]  # preempted in between
    # Drained after the exec: the miss leaves the window with its exec in view.
    assert live_like(copies(slow), [t0 + 9 * MS + 1, t0 + 30 * MS]) == [True]
    # Drained between them: the miss leaves the window (at t0 + 5 ms) before its exec arrives.
    assert live_like(copies(slow), [t0 + 6 * MS, t0 + 30 * MS]) == [False]


# --- the tally of misses -------------------------------------------------------------


def test_the_exec_ending_a_search_takes_its_count_once() -> None:
    pending: PendingMisses = {}
    events = search(10 * MS)
    for miss in events[:4]:
        count_path_miss(pending, miss)  # type: ignore[arg-type]
    assert take_path_misses(pending, events[4]) == 4  # type: ignore[arg-type]
    assert take_path_misses(pending, events[4]) == 0  # type: ignore[arg-type]
    assert pending == {}


def test_a_count_for_another_name_is_stale_and_dropped() -> None:
    # The misses of "as" whose exec a filter hid; the thread later runs "ld".
    pending: PendingMisses = {}
    count_path_miss(pending, attempt(10 * MS, b"/usr/local/bin", b"as"))
    assert take_path_misses(pending, found(20 * MS, b"ld")) == 0
    assert pending == {}


def test_a_new_search_by_the_same_thread_starts_its_count_again() -> None:
    pending: PendingMisses = {}
    count_path_miss(pending, attempt(10 * MS, b"/a", b"as"))
    count_path_miss(pending, attempt(11 * MS, b"/a", b"ld"))
    count_path_miss(pending, attempt(11 * MS + 5 * US, b"/b", b"ld"))
    assert take_path_misses(pending, found(12 * MS, b"ld")) == 2
