"""The process table on synthetic event streams: identity across PID reuse, events
out of order or for unknown processes, losses, orphans, threads, zombies, the
snapshot of pre-existing processes and the memory horizon. No root needed."""

from __future__ import annotations

import itertools
import random

import pytest
from proctrace.formats.views import timeline_json
from proctrace.model.events import (
    CLONE_PARENT,
    CLONE_THREAD,
    CLONE_VM,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    Event,
    ForkEvent,
    WaitStatus,
)
from proctrace.model.ordering import Reorderer
from proctrace.model.process_table import ITEMS_MAX, Process, ProcessTable
from proctrace.model.procsnap import ProcInfo

from tests.synthetic import (
    INIT,
    MS,
    OK,
    SHELL,
    SHELL_START,
    deliver,
    execve,
    exit_,
    exited,
    fork,
    generate,
    killed,
    reap,
)

SIGTERM, SIGKILL, SIGSTOP, SIGTSTP, SIGCONT = 15, 9, 19, 20, 18
SI_KERNEL = 0x80


def table_of(*events: Event, **kw: int) -> ProcessTable:
    table = ProcessTable(**kw)
    table.write(list(events))
    return table


def only(table: ProcessTable, pid: int) -> Process:
    (rec,) = table.find(pid)
    return rec


def child_life(pid: int, t: int, status: WaitStatus = OK, argv: list[bytes] | None = None) -> list[Event]:
    """The shell forks `pid` at t, it execs, exits 1 ms later and is reaped at once."""
    start = t - 10_000  # the kernel stamps the child's start before the fork event
    argv = argv or [b"true"]
    return [
        fork(t, pid),
        execve(t + 100_000, pid, start, argv),
        exit_(t + MS, pid, start, status, comm=argv[0]),
        reap(t + MS + 50_000, pid, status),
    ]


# -- identity ------------------------------------------------------------------


def test_reused_pid_gives_two_records_with_their_own_lives():
    table = table_of(
        *child_life(200, 10 * MS, exited(1), [b"false"]),
        *child_life(200, 20 * MS, WaitStatus(0), [b"true"]),
    )
    first, second = table.find(200)
    assert (first.start_ns, second.start_ns) == (10 * MS - 10_000, 20 * MS - 10_000)
    assert [e.argv for e in first.execs] == [[b"false"]]
    assert [e.argv for e in second.execs] == [[b"true"]]
    assert (first.status, second.status) == (exited(1), WaitStatus(0))
    assert list(only(table, SHELL).children) == [200, 200]


def test_child_takes_its_exact_start_from_its_first_own_event():
    table = table_of(fork(10 * MS, 200))
    assert only(table, 200).start_exact is False
    table.write([execve(11 * MS, 200, 10 * MS - 25_000, [b"ls"])])
    rec = only(table, 200)
    assert (rec.start_ns, rec.start_exact, rec.forked_ns) == (10 * MS - 25_000, True, 10 * MS)


def test_event_with_later_start_on_a_forked_pid_is_a_new_process():
    # The forked child's reap and the new holder's fork were both lost.
    table = table_of(fork(10 * MS, 200), execve(11 * MS, 200, 10 * MS - 1, [b"a"]))
    table.write([execve(30 * MS, 200, 29 * MS, [b"b"])])
    old, new = table.find(200)
    assert old.retired and not old.waiting and old.execs[0].argv == [b"a"]
    assert new.start_ns == 29 * MS and new.execs[0].argv == [b"b"] and new.forked_ns is None


def test_fork_of_a_pid_whose_reap_was_not_seen_retires_the_old_holder():
    life = child_life(200, 10 * MS)
    table = table_of(*life[:3], fork(20 * MS, 200))  # no reap of the first 200
    old, new = table.find(200)
    assert old.retired and old.end_ns == 11 * MS and old.reaped_ns is None
    assert new.forked_ns == 20 * MS and new.end_ns is None
    assert [r.serial for r in table.live() if r.tgid == 200] == [new.serial]


def test_exec_before_its_fork_is_placed_on_the_forked_child():
    start = 10 * MS - 10_000
    table = table_of(execve(10 * MS + 100_000, 200, start, [b"ls", b"-l"]), fork(10 * MS, 200))
    rec = only(table, 200)
    assert (rec.forked_ns, rec.forked_by, rec.start_ns) == (10 * MS, SHELL, start)
    assert rec.execs[0].argv == [b"ls", b"-l"]
    assert {r.serial for r in table.live()} == {only(table, SHELL).serial, rec.serial} and not rec.retired
    assert list(only(table, SHELL).children) == [200]


def test_whole_life_before_its_fork_is_still_one_process():
    start = 10 * MS - 10_000
    life = child_life(200, 10 * MS)
    table = table_of(*life[1:], life[0])  # fork last
    rec = only(table, 200)
    assert rec.forked_ns == 10 * MS and rec.reaped_ns == 11 * MS + 50_000 and rec.start_ns == start


def test_event_for_unknown_process_creates_a_record_from_its_header():
    table = table_of(exit_(10 * MS, 300, 2 * MS, exited(2), ppid=77, comm=b"daemon"))
    rec = only(table, 300)
    assert (rec.start_ns, rec.ppid, rec.comm, rec.status) == (2 * MS, 77, b"daemon", exited(2))
    assert rec.forked_ns is None and not rec.pre_existing and rec.first_seen_ns == 10 * MS


def test_reaper_outside_the_table_gets_no_record():
    # In `-- COMMAND` mode proctrace itself reaps the command: it is not traced.
    table = table_of(
        execve(10 * MS, 200, 9 * MS, [b"cmd"], ppid=50),
        exit_(11 * MS, 200, 9 * MS, ppid=50),
        reap(12 * MS, 200, by=50, start=1 * MS),
    )
    assert [r.tgid for r in table.processes()] == [200]
    rec = only(table, 200)
    assert (rec.reaper, rec.reaper_serial, rec.zombie_ns) == (50, None, 1 * MS)


def test_reap_of_a_never_seen_process_records_what_the_reap_says():
    table = table_of(fork(1 * MS, 400), reap(10 * MS, 300, killed(SIGKILL)))
    rec = only(table, 300)
    assert (rec.start_ns, rec.end_ns, rec.status, rec.reaped_ns) == (0, None, killed(SIGKILL), 10 * MS)
    assert rec.lifetime_ns is None and rec.zombie_ns is None


def test_shuffled_stream_through_the_reorder_window_gives_the_ordered_result():
    events: list[Event] = []
    for i in range(40):
        events += child_life(200 + i % 7, (10 + 3 * i) * MS, exited(i % 3))
    ordered = timeline_json(table_of(*events), None)
    rng = random.Random(7)
    shuffled = events[:]
    rng.shuffle(shuffled)
    reorder = Reorderer(margin_ns=0)
    table = ProcessTable()
    for i in range(0, len(shuffled), 37):
        table.write(reorder.push(shuffled[i : i + 37], drained_at_ns=0))
    table.write(reorder.flush())
    assert timeline_json(table, None) == ordered


# -- losses ----------------------------------------------------------------------


def test_lost_events_mark_what_was_alive_in_the_loss_window():
    table = table_of(
        *child_life(200, 10 * MS),  # reaped long before the loss
        *child_life(201, 95 * MS),  # reaped inside the window
        fork(96 * MS, 202),  # alive at the loss
        loss_window_ns=50 * MS,
    )
    table.lost(100 * MS, new=3, total=3)
    table.write([fork(99 * MS, 203), fork(120 * MS, 204)])  # released after the report
    incomplete = {r.tgid: r.incomplete for r in table.processes()}
    assert incomplete == {SHELL: True, 200: False, 201: True, 202: True, 203: True, 204: False}
    assert table.lost_total == 3


# -- orphans ---------------------------------------------------------------------


def test_orphan_is_adopted_by_the_subreaper_at_its_parents_exit():
    mid_start, gc_start = 10 * MS - 1_000, 11 * MS - 1_000
    table = table_of(
        fork(10 * MS, 200),
        fork(11 * MS, 201, by=200, start=mid_start, ppid=SHELL),
        exit_(12 * MS, 200, mid_start),
        reap(13 * MS, 200),
        exit_(40 * MS, 201, gc_start, exited(5), ppid=SHELL),  # its header names the new parent
        reap(41 * MS, 201, exited(5)),
    )
    orphan = only(table, 201)
    assert (orphan.original_ppid, orphan.ppid, orphan.adopted_by, orphan.adopted_ns) == (200, SHELL, SHELL, 12 * MS)
    assert (orphan.reaper, orphan.zombie_ns) == (SHELL, 1 * MS)
    assert orphan.origin_serial == only(table, 200).serial  # the tree keeps it under its birth parent


def test_zombie_orphan_is_adopted_by_whoever_reaps_it():
    mid_start = 10 * MS - 1_000
    table = table_of(
        fork(10 * MS, 200),
        fork(11 * MS, 201, by=200, start=mid_start, ppid=SHELL),
        exit_(12 * MS, 201, 11 * MS - 1_000, exited(4), ppid=200),  # a zombie of 200
        exit_(13 * MS, 200, mid_start),
        reap(14 * MS, 201, exited(4), by=INIT, start=1),
    )
    orphan = only(table, 201)
    assert (orphan.adopted_by, orphan.adopted_ns, orphan.reaper, orphan.zombie_ns) == (INIT, 13 * MS, INIT, 2 * MS)


def test_live_parent_does_not_make_adoptions():
    table = table_of(*child_life(200, 10 * MS))
    assert not only(table, 200).adoptions


# -- threads ---------------------------------------------------------------------


def thread_start(ts: int, tid: int, tgid: int = 200, start: int = 10 * MS) -> ForkEvent:
    return fork(ts, tid, by=tgid, start=start, ppid=SHELL, flags=CLONE_THREAD | CLONE_VM)


def test_exec_from_a_thread_leaves_one_thread_and_keeps_the_process():
    start = 10 * MS
    table = table_of(
        fork(10 * MS + 1, 200),
        thread_start(11 * MS, 201),
        thread_start(12 * MS, 202),
        exit_(13 * MS, 200, start, killed(SIGKILL), process=False),  # the old leader, zapped by de_thread
        exit_(13 * MS + 1, 202, start, killed(SIGKILL), tgid=200, process=False),
        execve(14 * MS, 200, start, [b"true", b"from-thread"], old_pid=201),
        generate(15 * MS, 201, SIGTERM, group=False),  # the old tid no longer names a thread of 200
    )
    rec = only(table, 200)
    assert (rec.threads, rec.live_threads, rec.threads_created) == (3, 1, 3)
    assert rec.execs[0].old_pid == 201 and rec.execs[0].argv == [b"true", b"from-thread"]
    assert not rec.signals and rec.end_ns is None


@pytest.mark.parametrize("order", list(itertools.permutations([200, 201, 202])))
def test_thread_group_ends_at_its_last_threads_exit_in_any_order(order):
    start = 10 * MS
    events: list[Event] = [fork(10 * MS + 1, 200), thread_start(11 * MS, 201), thread_start(12 * MS, 202)]
    for i, tid in enumerate(order):
        last = i == len(order) - 1
        status = exited(7) if last else WaitStatus(0)
        events.append(exit_(20 * MS + i, tid, start, status, tgid=200, process=last))
    table = table_of(*events, reap(30 * MS, 200, exited(7)))
    rec = only(table, 200)
    assert (rec.end_ns, rec.status, rec.threads, rec.lifetime_ns) == (20 * MS + 2, exited(7), 3, 10 * MS + 2)
    assert rec.leader_exit_ns == (None if order[-1] == 200 else 20 * MS + order.index(200))


def test_thread_exits_before_the_last_leave_the_process_alive():
    start = 10 * MS
    table = table_of(
        fork(10 * MS + 1, 200),
        thread_start(11 * MS, 201),
        thread_start(12 * MS, 202),
        exit_(13 * MS, 200, start, process=False),
    )
    rec = only(table, 200)
    assert (rec.live_threads, rec.end_ns, rec.leader_exit_ns) == (2, None, 13 * MS)
    table.write([exit_(14 * MS, 201, start, tgid=200, process=False)])
    assert (rec.live_threads, rec.end_ns) == (1, None)


def test_signal_to_a_thread_is_recorded_on_its_process():
    table = table_of(fork(10 * MS + 1, 200), thread_start(11 * MS, 201), generate(12 * MS, 201, SIGTERM, group=False))
    assert [(s.signo, s.sender_pid) for s in only(table, 200).signals] == [(SIGTERM, SHELL)]


# -- zombies and the end ---------------------------------------------------------


def test_zombie_time_is_exactly_reap_minus_exit():
    life = child_life(200, 10 * MS, exited(3))
    life[3] = reap(511 * MS + 123, 200, exited(3))
    rec = only(table_of(*life), 200)
    assert rec.zombie_ns == 500 * MS + 123
    assert rec.lifetime_ns == 1 * MS + 10_000


def test_unreaped_zombie_is_still_waiting_at_the_end():
    life = child_life(200, 10 * MS, exited(3))
    table = table_of(*life[:3], fork(900 * MS, 300))
    rec = only(table, 200)
    assert rec.waiting and rec.zombie_ns is None and rec in table.live()
    (obj,) = [d for d in timeline_json(table, [200])]
    assert (obj["zombie_at_end"], obj["zombie_so_far_ns"], obj["reaped_ns"]) == (True, 889 * MS, None)


def test_clone_parent_child_is_its_forkers_sibling():
    table = table_of(fork(10 * MS, 200, flags=CLONE_PARENT))
    rec = only(table, 200)
    assert (rec.ppid, rec.forked_by) == (INIT, SHELL)
    assert not only(table, SHELL).children


# -- signals ---------------------------------------------------------------------


def test_stop_and_continue_times_come_from_stop_delivery_and_sigcont():
    start = 10 * MS - 1
    table = table_of(
        fork(10 * MS, 200),
        deliver(20 * MS, 200, start, SIGTSTP, handler=2),  # handled: not a stop
        generate(30 * MS, 200, SIGSTOP),
        deliver(31 * MS, 200, start, SIGSTOP),
        generate(45 * MS, 200, SIGCONT),
        generate(50 * MS, 200, SIGTERM),
        deliver(51 * MS, 200, start, SIGKILL, group_exit=SIGTERM),
        exit_(52 * MS, 200, start, killed(SIGTERM)),
    )
    rec = only(table, 200)
    assert [(s.stopped_ns, s.signo, s.continued_ns) for s in rec.stops] == [(31 * MS, SIGSTOP, 45 * MS)]
    assert [(s.ts_ns, s.signo, s.stage) for s in rec.signals] == [
        (20 * MS, SIGTSTP, SIGNAL_DELIVER),
        (30 * MS, SIGSTOP, SIGNAL_GENERATE),
        (31 * MS, SIGSTOP, SIGNAL_DELIVER),
        (45 * MS, SIGCONT, SIGNAL_GENERATE),
        (50 * MS, SIGTERM, SIGNAL_GENERATE),
        (51 * MS, SIGKILL, SIGNAL_DELIVER),
    ]
    assert rec.status == killed(SIGTERM)
    assert table.aggregates.signal_deaths == 1


def test_kernel_signal_does_not_touch_the_interrupted_task():
    # A timer's signal is stamped with whatever task was running: not its sender.
    table = table_of(
        fork(10 * MS, 200),
        fork(11 * MS, 300),
        generate(20 * MS, 200, 14, by=999, start=3, code=SI_KERNEL),
        generate(21 * MS, 200, 14, by=300, start=11 * MS - 1, code=SI_KERNEL),  # header ppid 1, not its own
    )
    assert table.find(999) == []
    assert not only(table, 300).adoptions and only(table, 300).start_exact is False
    assert [(s.signo, s.sender_pid) for s in only(table, 200).signals] == [(14, None), (14, None)]
    assert table.aggregates.signals_from_kernel.counts == {14: 2}


def test_signal_to_an_untraced_pid_invents_no_record():
    table = table_of(generate(20 * MS, 4321, SIGTERM))
    assert table.find(4321) == []
    assert table.aggregates.signals_sent.counts == {SIGTERM: 1}


def test_lists_kept_per_process_are_capped_with_a_count_of_the_rest():
    events: list[Event] = [fork(10 * MS, 200)]
    events += [generate(11 * MS + i, 200, 10) for i in range(ITEMS_MAX + 25)]
    rec = only(table_of(*events), 200)
    assert (len(rec.signals), rec.omitted) == (ITEMS_MAX, 25)


def test_failed_exec_is_kept_apart_from_the_image_changes():
    table = table_of(
        fork(10 * MS, 200),
        execve(11 * MS, 200, 10 * MS - 1, [b"nope", b"x"], errno=2, filename=b"/nonexistent/nope"),
        execve(12 * MS, 200, 10 * MS - 1, [b"ls"]),
    )
    rec = only(table, 200)
    assert [(e.filename, e.errno) for e in rec.failed_execs] == [(b"/nonexistent/nope", 2)]
    assert [e.argv for e in rec.execs] == [[b"ls"]]
    assert rec.comm == b"ls"
    assert table.aggregates.failures.counts == {("exec ENOENT", b"/nonexistent/nope"): 1}


# -- the snapshot ----------------------------------------------------------------


SNAPSHOT = [
    ProcInfo(1, 0, 0, b"init", [b"/sbin/init"], start_ns=10 * MS, threads=1),
    ProcInfo(SHELL, 1, 1000, b"sh", [b"-sh"], start_ns=2_000 * MS, threads=1),
    ProcInfo(150, SHELL, 1000, b"server", [b"server", b"--port=80"], start_ns=2_500 * MS, threads=4),
]


def test_seeded_processes_are_pre_existing_with_parents_and_command_lines():
    table = ProcessTable()
    table.seed(SNAPSHOT)
    init, sh, server = table.processes()
    assert all(r.pre_existing and not r.start_exact for r in (init, sh, server))
    assert (sh.origin_serial, server.origin_serial) == (init.serial, sh.serial)
    assert (server.argv, server.threads, server.uid) == ([b"server", b"--port=80"], 4, 1000)
    assert table.roots() == [init]


def test_seeded_process_takes_its_exact_start_from_its_first_event():
    table = ProcessTable()
    table.seed(SNAPSHOT)
    exact = SHELL_START
    table.write([fork(3_000 * MS, 200, start=exact)])
    sh = only(table, SHELL)
    assert (sh.start_ns, sh.start_exact, sh.pre_existing, sh.children) == (exact, True, True, [150, 200])


def test_seeded_pid_reused_after_tracing_started_is_a_new_process():
    table = ProcessTable()
    table.seed(SNAPSHOT)
    table.write([fork(3_000 * MS, 200, start=SHELL_START)])
    table.write([exit_(9_000 * MS, 150, 8_000 * MS, ppid=SHELL)])  # started long after the snapshot's 150
    old, new = table.find(150)
    assert old.pre_existing and old.retired
    assert not new.pre_existing and new.start_ns == 8_000 * MS


def test_seed_keeps_what_events_already_said():
    table = table_of(fork(10 * MS, 150))
    table.seed(SNAPSHOT)
    assert only(table, 150).pre_existing is False


def test_unseen_pre_existing_processes_stay_out_of_the_counts():
    table = ProcessTable()
    table.seed(SNAPSHOT)
    table.write(child_life(200, 3_000 * MS))
    counts = table.command_counts()
    assert {k: v.processes for k, v in counts.items()} == {b"true": 1, b"sh": 1}  # sh forked: it was seen
    assert table.aggregates.processes == 1


# -- memory horizon ---------------------------------------------------------------


def test_horizon_evicts_finished_processes_while_aggregates_stay_exact():
    events: list[Event] = []
    for i in range(500):
        status = exited(1) if i % 5 == 0 else killed(SIGTERM) if i % 7 == 0 else WaitStatus(0)
        t = (10 + 2 * i) * MS
        start = t - 10_000
        events += [
            fork(t, 1000 + i),
            exit_(t + (i + 1) * 1000, 1000 + i, start, status),
            reap(t + MS, 1000 + i, status),
        ]
    table = table_of(*events, keep_finished=50)
    assert len(table) == 51  # the 50 newest finished, and the shell
    assert [r.tgid for r in table.processes()][1:] == list(range(1450, 1500))
    agg = table.aggregates
    assert agg.processes == 500
    assert agg.nonzero_exits == 100
    assert agg.signal_deaths == sum(1 for i in range(500) if i % 5 and i % 7 == 0)
    assert [e.tgid for e in agg.longest()] == [1499, 1498, 1497, 1496, 1495]
    assert [e.tgid for e in agg.shortest()] == [1000, 1001, 1002, 1003, 1004]
    assert agg.shortest()[0].lifetime_ns == 1000 + 10_000
    assert table.command_counts()[b"sh"].processes == 501
    assert only(table, SHELL).children_count == 500


def test_sink_protocol_methods_are_harmless():
    table = ProcessTable()
    table.write([])
    table.status("12 events/s")
    table.close()
    assert len(table) == 0 and table.first_ts is None


def _varied_lives() -> list[Event]:
    """Lives with something in each kept list: a failed exec, a signal, a child, an exit by signal."""
    return [
        *child_life(200, 10 * MS, exited(2), [b"make", b"-j2"]),
        execve(20 * MS, 300, 19 * MS, [b"nope"], errno=2),
        generate(21 * MS, 300, 15),
        deliver(22 * MS, 300, 19 * MS, 15),
        exit_(23 * MS, 300, 19 * MS, killed(15)),
        reap(24 * MS, 300, killed(15)),
    ]


def test_a_table_that_does_not_count_keeps_every_life_as_one_that_counts():
    counting, lives_only = table_of(*_varied_lives()), table_of(*_varied_lives(), counting=False)
    assert timeline_json(lives_only, None) == timeline_json(counting, None)
    assert counting.aggregates.processes == 2 and counting.aggregates.nonzero_exits == 1
    # The live view's table: nothing counted, rather than counts that would be wrong
    assert lives_only.aggregates.processes == 0 and not lives_only.aggregates.events
    assert not lives_only.aggregates.signals_sent.counts


def test_what_one_process_is_given_never_shows_in_anothers_lists():
    # The lists start as one shared empty tuple: a first entry makes a list of the process's own.
    table = table_of(*_varied_lives())
    quiet, signalled = only(table, 200), only(table, 300)
    assert [s.signo for s in signalled.signals] == [15, 15] and len(signalled.failed_execs) == 1
    assert not quiet.signals and not quiet.failed_execs and not quiet.stops
    assert list(only(table, SHELL).children) == [200, 300] and not quiet.children
