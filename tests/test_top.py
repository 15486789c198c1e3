"""The live view (--top) without a terminal: the rows it shows from the process
table, the failures pane, the rates, the screen it draws and the keys."""

from __future__ import annotations

import errno
import re

import pytest
from proctrace.cli import main
from proctrace.model.process_table import ProcessTable
from proctrace.top.app import TopSink
from proctrace.top.model import ENDED_SHOWN_MAX, ENDED_VISIBLE_NS, FailureLog, Rates, ViewState, build_rows
from proctrace.top.screen import Header, frame
from proctrace.top.terminal import parse_keys

from tests.synthetic import CLONE_THREAD, MS, SHELL, execve, exit_, exited, fork, killed, reap

CHILD, GRANDCHILD = 200, 300


def table_with(*events) -> ProcessTable:
    table = ProcessTable()
    table.write(list(events))
    return table


def lived(status=None, *, reaped: bool = True) -> ProcessTable:
    """The shell forks CHILD, which execs `make -j2`; with `status`, CHILD exits so at 50 ms."""
    events = [fork(10 * MS, CHILD), execve(11 * MS, CHILD, 10 * MS, [b"make", b"-j2"])]
    if status is not None:
        events.append(exit_(50 * MS, CHILD, 10 * MS, status, comm=b"make"))
        if reaped:
            events.append(reap(51 * MS, CHILD, status))
    return table_with(*events)


def by_pid(rows):
    return {row.pid: row for row in rows if not row.thread}


def test_a_running_child_is_a_row_under_its_parent_with_its_command_line():
    rows = build_rows(lived(), ViewState(), 60 * MS)
    shell, child = by_pid(rows)[SHELL], by_pid(rows)[CHILD]
    assert child.command == "make -j2" and child.state == "running"
    assert child.depth == shell.depth + 1 and shell.children == 1
    assert child.age_ns == 50 * MS


def test_a_process_that_ended_stays_in_sight_for_a_while_with_how_it_ended():
    table = lived(killed(15))
    row = by_pid(build_rows(table, ViewState(), 60 * MS))[CHILD]
    assert row.state == "killed by SIGTERM" and row.role == "exit_bad"
    assert row.age_ns == 40 * MS  # its lifetime
    assert CHILD not in by_pid(build_rows(table, ViewState(), 52 * MS + ENDED_VISIBLE_NS))


def test_an_unreaped_process_is_a_zombie_that_says_how_it_ended():
    row = by_pid(build_rows(lived(exited(2), reaped=False), ViewState(), 60 * MS))[CHILD]
    assert row.state == "zombie, exit 2"


def test_the_name_filter_keeps_matching_rows():
    rows = build_rows(lived(), ViewState(name_filter="MAKE"), 60 * MS)
    assert [row.pid for row in rows] == [CHILD]
    assert not build_rows(lived(), ViewState(name_filter="nothing-like-it"), 60 * MS)


def test_failures_only_keeps_failed_processes():
    table = lived(exited(2))
    assert [row.pid for row in build_rows(table, ViewState(failures_only=True), 60 * MS)] == [CHILD]
    assert not build_rows(lived(exited(0)), ViewState(failures_only=True), 60 * MS)


def test_collapsing_a_process_hides_its_subtree():
    table = lived()
    table.write([fork(20 * MS, GRANDCHILD, by=CHILD, start=10 * MS, ppid=SHELL, comm=b"make")])
    shell = by_pid(build_rows(table, ViewState(), 60 * MS))[SHELL]
    assert GRANDCHILD in by_pid(build_rows(table, ViewState(), 60 * MS))
    rows = build_rows(table, ViewState(collapsed={shell.serial}), 60 * MS)
    assert [row.pid for row in rows] == [SHELL] and rows[0].collapsed


def test_threads_are_folded_unless_asked_for():
    table = lived()
    table.write([fork(20 * MS, CHILD + 1, by=CHILD, start=10 * MS, flags=CLONE_THREAD, comm=b"make")])
    assert [r.pid for r in build_rows(table, ViewState(), 60 * MS) if r.thread] == []
    threads = [r for r in build_rows(table, ViewState(threads=True), 60 * MS) if r.thread]
    assert [r.pid for r in threads] == [CHILD + 1]


def test_sorting_by_age_puts_the_youngest_first():
    table = lived()
    table.write([fork(40 * MS, GRANDCHILD, by=CHILD, start=10 * MS, ppid=SHELL)])
    rows = build_rows(table, ViewState(sort="age"), 60 * MS)
    assert rows[0].pid == GRANDCHILD and all(row.depth == 0 for row in rows)


def test_the_failure_log_keeps_failures_and_not_path_misses():
    log = FailureLog()
    miss = execve(12 * MS, CHILD, 10 * MS, [b"cc"], errno=errno.ENOENT, filename=b"/usr/local/bin/cc")
    miss.path_search = True
    real = execve(13 * MS, CHILD, 10 * MS, [b"cc"], errno=errno.EACCES, filename=b"/opt/cc")
    log.write([miss, real, exit_(20 * MS, CHILD, 10 * MS, exited(0)), exit_(30 * MS, CHILD, 10 * MS, killed(9))])
    assert [f.words for f in log.latest] == ["exec failed EACCES /opt/cc", "killed by SIGKILL"]


def test_rates_count_processes_started_and_ended_not_threads():
    rates = Rates()
    rates.write([fork(1, CHILD), fork(2, CHILD + 1, by=CHILD, flags=CLONE_THREAD), exit_(3, CHILD, 1)])
    assert rates.take() == (3, 1, 1)
    assert rates.take() == (0, 0, 0)


def test_the_frame_fits_the_terminal_and_shows_hostile_names_inert():
    table = table_with(
        fork(10 * MS, CHILD),
        execve(11 * MS, CHILD, 10 * MS, [b"\x1b]0;pwned\x07", b"[red]x[/red]", "\u202eevil".encode()]),
    )
    rows = build_rows(table, ViewState(), 60 * MS)
    failures = list(FailureLog().latest)
    lines = frame(Header(10, 1, 1, 0), ViewState(), rows, failures, 200, 24, color=False)
    assert len(lines) <= 24 and all(len(line) <= 200 for line in lines)
    narrow = frame(Header(10, 1, 1, 0), ViewState(), rows, failures, 80, 24, color=False)
    assert len(narrow) == 24 and all(len(line) <= 80 for line in narrow)
    text = "\n".join(lines)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[red]x[/red]" in text  # markup shown as text, not applied
    assert re.search(r"\\x1b|\\e", text)


def test_the_header_says_rates_and_losses():
    lines = frame(Header(1234, 5, 4, 7), ViewState(), [], [], 100, 10, color=False)
    assert "1,234 events/s" in lines[0] and "5 started/s" in lines[0] and "7 lost" in lines[0]


def test_keys_are_parsed_by_name():
    assert parse_keys("q\x1b[A\x1b[Bj\r\x1b\x7f") == ["q", "up", "down", "j", "enter", "escape", "backspace"]


class FakeScreen:
    def __init__(self) -> None:
        self.frames: list[list[str]] = []

    def size(self) -> tuple[int, int]:
        return 100, 30

    def draw(self, lines: list[str]) -> None:
        self.frames.append(lines)


def test_typing_a_filter_narrows_the_view_and_enter_opens_the_timeline():
    view = TopSink(ProcessTable(), live=False)
    view.write([fork(10 * MS, CHILD), execve(11 * MS, CHILD, 10 * MS, [b"make", b"-j2"])])
    screen = FakeScreen()
    for key in ["/", "m", "a", "k", "e", "enter"]:
        view.key(key)
    view.draw(screen, 0.25)
    assert "filter: make" in screen.frames[-1][0]
    assert any("make -j2" in line for line in screen.frames[-1][2:])
    view.key("enter")
    view.draw(screen, 0.25)
    assert screen.frames[-1][0] == f"timeline of {CHILD}"
    assert any("exec /usr/bin/make make -j2" in line for line in screen.frames[-1])
    view.key("escape")
    view.key("q")
    assert view.quit.is_set()


def test_the_view_counts_what_it_is_fed_between_redraws():
    view = TopSink(ProcessTable(), live=False)
    view.write([fork(10 * MS, CHILD), exit_(20 * MS, CHILD, 10 * MS)])
    screen = FakeScreen()
    view.draw(screen, 0.5)
    assert "4 events/s" in screen.frames[-1][0] and "2 started/s" in screen.frames[-1][0]


@pytest.mark.parametrize(
    "args",
    [["--top", "--json"], ["--top", "-o", "x"], ["--top", "--tree"], ["--speed", "2"], ["--top", "--speed", "0"]],
)
def test_top_refuses_what_it_cannot_combine_with(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--top" in err or "--speed" in err


def test_only_the_latest_ended_processes_are_kept_in_sight():
    table = ProcessTable()
    for i in range(ENDED_SHOWN_MAX + 50):
        pid, ts = 1000 + i, 10 * MS + i * 1000
        table.write([fork(ts, pid), exit_(ts + 100, pid, ts), reap(ts + 200, pid)])
    ended = [row.pid for row in build_rows(table, ViewState(), 20 * MS) if row.pid >= 1000]
    assert len(ended) == ENDED_SHOWN_MAX
    assert max(ended) == 1000 + ENDED_SHOWN_MAX + 49  # the newest kept, the oldest dropped


def test_pause_holds_the_display_while_the_table_still_takes_events():
    view = TopSink(ProcessTable(), live=False)
    view.write([fork(10 * MS, CHILD), execve(11 * MS, CHILD, 10 * MS, [b"make"])])
    screen = FakeScreen()
    view.draw(screen, 0.25)
    view.key("p")
    view.write([fork(20 * MS, GRANDCHILD, by=CHILD, start=10 * MS, ppid=SHELL)])
    view.draw(screen, 0.25)
    assert not any(f" {GRANDCHILD} " in line for line in screen.frames[-1])
    assert view.table.find(GRANDCHILD), "the table stopped taking events while paused"
    view.key("p")
    view.draw(screen, 0.25)
    assert any(f" {GRANDCHILD} " in line for line in screen.frames[-1])


def test_a_redraw_for_a_key_keeps_the_rates_measured_on_the_timer():
    view = TopSink(ProcessTable(), live=False)
    view.write([fork(10 * MS, CHILD), exit_(20 * MS, CHILD, 10 * MS)])
    screen = FakeScreen()
    view.draw(screen, 0.5)
    view.key("j")
    view.draw(screen, None)  # as run() redraws after a key, between timer redraws
    assert "4 events/s" in screen.frames[-1][0] and "2 started/s" in screen.frames[-1][0]


def test_proc_figures_are_read_once_a_second_not_at_every_redraw() -> None:
    """/proc/PID/stat of every live process at each of four redraws a second
    was the view's largest cost under a storm."""
    from proctrace.top.app import PROC_REFRESH_S, ProcCache

    reads: list[int] = []
    now = [100.0]

    def read(pid: int) -> tuple[str, int]:
        reads.append(pid)
        return "S", len(reads)

    cache = ProcCache(read, lambda: now[0])
    assert cache(7) == ("S", 1)
    cache.redrawn()
    now[0] += 0.25
    assert cache(7) == ("S", 1) and reads == [7]  # the next redraw: remembered
    cache.redrawn()
    now[0] += PROC_REFRESH_S
    assert cache(7) == ("S", 2)  # a second on: read again
    cache.redrawn()
    cache(8)
    cache.redrawn()  # 7 not shown this time: forgotten
    now[0] += 0.1
    cache(7)
    assert reads == [7, 7, 8, 7]


def test_a_redraw_reads_proc_only_for_the_rows_it_draws():
    table = table_with(*(fork(10 * MS + n, 1000 + n) for n in range(100)))
    asked: list[int] = []

    def reader(pid: int) -> tuple[str, int]:
        asked.append(pid)
        return ("S", 10_000_000 * (pid % 7))

    rows = build_rows(table, ViewState(), 60 * MS, reader)
    lines = frame(Header(0, 0, 0, 0), ViewState(), rows, [], 80, 24, False)
    drawn = {int(re.match(r">?\s*(\d+)", line).group(1)) for line in lines[2:-1] if line.strip()}
    assert len(rows) == 101 and len(drawn) == 21
    assert set(asked) == drawn  # the other 80 are counted in the header, never read
    # Sorting by CPU needs every live process's figure, each read once
    asked.clear()
    by_cpu = build_rows(table, ViewState(sort="cpu"), 60 * MS, reader)
    assert len(asked) == 101 and len(set(asked)) == 101
    cpus = [row.cpu_ns for row in by_cpu]
    assert cpus == sorted(cpus, reverse=True)


def test_the_live_view_reads_each_drawn_process_once_across_redraws_within_a_second():
    from proctrace.top.app import PROC_REFRESH_S, ProcCache

    view = TopSink(table_with(*(fork(10 * MS + n, 1000 + n) for n in range(50))), live=True)
    reads: list[int] = []
    now = [100.0]

    def read(pid: int) -> tuple[str, int]:
        reads.append(pid)
        return ("S", 0)

    view._proc = ProcCache(read, lambda: now[0])
    screen = FakeScreen()
    view.draw(screen, 0.25)
    drawn = len(reads)
    assert 0 < drawn < 51  # the rows that fit on a 30-line screen, not the 51 live processes
    now[0] += 0.25
    view.draw(screen, 0.25)
    assert len(reads) == drawn  # the redraw a quarter second later read nothing again
    now[0] += PROC_REFRESH_S
    view.draw(screen, 0.25)
    assert len(reads) == 2 * drawn and set(reads[drawn:]) == set(reads[:drawn])


def test_enter_opens_the_life_of_the_selected_process_not_of_every_holder_of_its_pid():
    first_start, second_start = 10 * MS, 30 * MS
    view = TopSink(ProcessTable(), live=False)
    view.write(
        [
            fork(first_start, CHILD),
            execve(first_start + MS, CHILD, first_start, [b"make", b"old"]),
            exit_(20 * MS, CHILD, first_start, exited(1), comm=b"make"),
            reap(21 * MS, CHILD, exited(1)),
            fork(second_start, CHILD),  # the pid, reused
            execve(second_start + MS, CHILD, second_start, [b"make", b"new"]),
        ]
    )
    rows = list(view._rows())
    assert [row.command for row in rows if row.pid == CHILD] == ["make old", "make new"]
    view.state.selected = next(i for i, row in enumerate(rows) if row.command == "make new")
    view.key("enter")
    screen = FakeScreen()
    view.draw(screen, 0.25)
    page = "\n".join(screen.frames[-1])
    assert screen.frames[-1][0] == f"timeline of {CHILD}"
    assert "make new" in page and "make old" not in page and "exit 1" not in page


def test_a_zombie_shows_the_cpu_its_exit_reported_as_the_cpu_sort_ranks_it():
    import dataclasses

    from proctrace.model.events import ResourceUsage

    usage = ResourceUsage(300_000_000, 200_000_000, 1024, 0, 0, 0, 0, None, None)
    ended = dataclasses.replace(exit_(50 * MS, CHILD, 10 * MS, exited(2), comm=b"make"), usage=usage)
    table = table_with(fork(10 * MS, CHILD), execve(11 * MS, CHILD, 10 * MS, [b"make"]), ended)
    zombie = by_pid(build_rows(table, ViewState(), 60 * MS))[CHILD]
    assert zombie.state == "zombie, exit 2" and zombie.cpu_ns == 500_000_000
    assert build_rows(table, ViewState(sort="cpu"), 60 * MS)[0].pid == CHILD
