"""The pretty stream renderer: exact lines per event kind, colours, the escaping of
hostile strings, durations, and the terminal sink's status line. No root needed."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from proctrace.formats import stream
from proctrace.formats.stream import StreamRenderer, Terminal
from proctrace.formats.text import DETAIL_MAX, ansi_codes
from proctrace.model.clock import Clock
from proctrace.model.context import ALL_CAPABILITIES, Credentials, ProcessContext
from proctrace.model.events import (
    CGROUP_MKDIR,
    CGROUP_RENAME,
    CGROUP_RMDIR,
    CLONE_PARENT,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    FOLD_PTRACE,
    FOLD_RATE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
)
from rich.cells import cell_len

from tests.environment import requires
from tests.test_text import unescape

EPOCH_S = 1_700_000_000  # 2023-11-14 22:13:20 UTC
BOOT_OFFSET_NS = EPOCH_S * 1_000_000_000 - 100_000_000_000  # monotonic 100 s is EPOCH_S
TS = 100_000_000_000 + 1_234_567_000  # 22:13:21.234567 UTC
PREFIX = "22:13:21.234567"


@pytest.fixture(autouse=True, params=["python", "compiled"])
def renderer_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with each renderer: StreamRenderer compiles its lines
    (formats/_faststream.c) where that is built, and must say the same."""
    if request.param == "compiled":
        requires(stream._faststream is not None, "the compiled stream renderer (tracer/formats/_faststream.c)")
    else:
        monkeypatch.setattr(stream, "_faststream", None)
    return request.param


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


CLOCK = Clock(BOOT_OFFSET_NS)


def plain() -> StreamRenderer:
    return StreamRenderer(CLOCK, color=False)


def common(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts_ns": TS,
        "pid": 1234,
        "tgid": 1234,
        "ppid": 1000,
        "uid": 1000,
        "comm": b"bash",
        "start_ns": 100_000_000_000,
        "cpu": 0,
    }
    fields.update(overrides)
    return fields


def row(kind: str, detail: str, pid: str = "1234   ", comm: str = "bash           ") -> str:
    return f"{PREFIX} {kind:<6} {pid} 1000    {comm} {detail}"


# ---------------------------------------------------------------------------
# Lines, one test per behaviour, exact strings in plain mode


def test_header_names_every_column():
    assert plain().header() == "TIME            KIND   PID     PPID    COMM            DETAIL"


def test_time_column_is_local_wall_clock_with_microseconds(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    line = plain().line(ReapEvent(**common(ts_ns=100_000_000_000 + 5_000), reaped_pid=1))
    assert line.startswith("03:43:20.000005 reap ")


def test_fork_of_a_process_names_the_child():
    ev = ForkEvent(**common(), child_pid=1235, child_tgid=1235, child_ppid=1234)
    assert plain().line(ev) == row("fork", "process 1235")


def test_fork_of_a_thread_shows_tgid_and_tid_of_the_forker():
    ev = ForkEvent(
        **common(pid=1236),
        child_pid=1237,
        child_tgid=1234,
        child_ppid=1000,
        clone_flags=CLONE_THREAD | CLONE_VM,
    )
    assert plain().line(ev) == row("fork", "thread 1237", pid="1234/1236")


def test_fork_with_clone_parent_names_the_childs_other_parent():
    ev = ForkEvent(**common(), child_pid=1235, child_tgid=1235, child_ppid=1000, clone_flags=CLONE_PARENT)
    assert plain().line(ev) == row("fork", "process 1235 (ppid 1000)")


def test_vfork_is_noted():
    ev = ForkEvent(**common(), child_pid=1235, child_tgid=1235, child_ppid=1234, clone_flags=CLONE_VFORK | CLONE_VM)
    assert plain().line(ev) == row("fork", "process 1235 (vfork)")


def test_exec_shows_filename_then_shell_quoted_argv():
    ev = ExecEvent(**common(), filename=b"/usr/bin/ls", argv=[b"ls", b"-l", b"my file", b"it's", b""])
    assert plain().line(ev) == row("exec", "/usr/bin/ls ls -l 'my file' 'it'\"'\"'s' ''")


def test_exec_with_kernel_truncated_argv_is_marked():
    ev = ExecEvent(**common(), filename=b"/bin/echo", argv=[b"echo", b"aaa"], argv_truncated=True)
    assert plain().line(ev) == row("exec", "/bin/echo echo aaa …(truncated)")


def test_exec_with_truncated_filename_is_marked():
    ev = ExecEvent(**common(), filename=b"/very/long", argv=[b"x"], filename_truncated=True)
    assert plain().line(ev) == row("exec", "/very/long…(truncated) x")


def test_exec_with_unreadable_argv_says_so():
    ev = ExecEvent(**common(), filename=b"/bin/true", argv=[], argv_unreadable=True)
    assert plain().line(ev) == row("exec", "/bin/true (argv unreadable)")


def test_failed_exec_names_the_errno_and_is_red():
    ev = ExecEvent(**common(), filename=b"/no/such", argv=[b"such", b"-v"], errno=2, old_pid=1234)
    assert plain().line(ev) == row("exec", "FAILED ENOENT /no/such such -v")
    red, reset = ansi_codes()["exec_failed"]
    colored = StreamRenderer(CLOCK, color=True).line(ev)
    assert colored.endswith(f"{red}FAILED ENOENT /no/such such -v{reset}")


def test_exec_by_a_non_leader_thread_names_the_thread():
    ev = ExecEvent(**common(), filename=b"/bin/true", argv=[b"true"], old_pid=1240)
    assert plain().line(ev) == row("exec", "/bin/true true (from thread 1240)")


def path_miss(directory: bytes, name: bytes = b"as", **fields: Any) -> ExecEvent:
    return ExecEvent(
        **common(**fields), filename=directory + b"/" + name, argv=[name], errno=2, old_pid=1234, path_search=True
    )


def as_found(**fields: Any) -> ExecEvent:
    return ExecEvent(**common(comm=b"as", **fields), filename=b"/usr/bin/as", argv=[b"as", b"-o", b"f.o"], old_pid=1234)


def test_path_misses_have_no_line_and_the_exec_that_ends_the_search_counts_them():
    misses = [path_miss(d) for d in (b"/usr/local/bin", b"/root/.cargo/bin", b"/usr/local/sbin")]
    lines = plain().lines([*misses, as_found()])
    assert lines == [row("exec", "/usr/bin/as as -o f.o (after 3 PATH misses)", comm="as             ")]


def test_one_path_miss_is_said_in_the_singular():
    assert plain().lines([path_miss(b"/opt/bin"), as_found()]) == [
        row("exec", "/usr/bin/as as -o f.o (after 1 PATH miss)", comm="as             ")
    ]


def test_the_count_carries_over_to_a_later_batch():
    renderer = plain()
    assert renderer.lines([path_miss(b"/a"), path_miss(b"/b")]) == []
    assert renderer.line(path_miss(b"/c")) == ""
    assert renderer.lines([as_found()]) == [
        row("exec", "/usr/bin/as as -o f.o (after 3 PATH misses)", comm="as             ")
    ]
    assert renderer.lines([as_found()]) == [row("exec", "/usr/bin/as as -o f.o", comm="as             ")]


def test_a_failed_exec_that_is_no_path_miss_keeps_its_red_failed_line_and_counts_nothing():
    failure = ExecEvent(**common(), filename=b"/usr/local/bin/as", argv=[b"as"], errno=2, old_pid=1234)
    lines = plain().lines([failure, as_found()])
    assert lines == [
        row("exec", "FAILED ENOENT /usr/local/bin/as as"),
        row("exec", "/usr/bin/as as -o f.o", comm="as             "),
    ]


def test_misses_of_other_threads_are_not_counted_for_this_exec():
    renderer = plain()
    other = ExecEvent(
        **common(pid=1240), filename=b"/opt/bin/as", argv=[b"as"], errno=2, old_pid=1240, path_search=True
    )
    assert renderer.lines([other, path_miss(b"/a"), as_found()]) == [
        row("exec", "/usr/bin/as as -o f.o (after 1 PATH miss)", comm="as             ")
    ]


def test_a_thread_that_searched_path_has_its_misses_on_the_exec_line_with_its_pid_change():
    miss = ExecEvent(**common(pid=1240), filename=b"/a/true", argv=[b"true"], errno=2, old_pid=1240, path_search=True)
    success = ExecEvent(**common(comm=b"true"), filename=b"/bin/true", argv=[b"true"], old_pid=1240)
    assert plain().lines([miss, success]) == [
        row("exec", "/bin/true true (from thread 1240) (after 1 PATH miss)", comm="true           ")
    ]


def test_a_stale_count_for_another_name_is_not_said():
    # The exec that ended the search of "as" was hidden by a filter; "ld" comes next.
    ld = ExecEvent(**common(comm=b"ld"), filename=b"/usr/bin/ld", argv=[b"ld"], old_pid=1234)
    assert plain().lines([path_miss(b"/a"), ld]) == [row("exec", "/usr/bin/ld ld", comm="ld             ")]


def test_process_exit_shows_status_and_lifetime():
    ev = ExitEvent(**common(), status=WaitStatus(7 << 8), task_exit_code=7 << 8, process_exit=True)
    assert plain().line(ev) == row("exit", "process exit 7 after 1.23s")


def test_thread_exit_uses_the_threads_own_start():
    ev = ExitEvent(**common(pid=1240), status=WaitStatus(0), process_exit=False, task_start_ns=TS - 1_200_000)
    assert plain().line(ev) == row("exit", "thread exit 0 after 1.2ms", pid="1234/1240")


def test_exit_killed_by_signal_with_core_dump():
    ev = ExitEvent(**common(), status=WaitStatus(11 | 0x80), process_exit=True)
    assert plain().line(ev) == row("exit", "process killed by SIGSEGV (core dumped) after 1.23s")


def test_exit_without_a_known_start_has_no_lifetime():
    ev = ExitEvent(**common(start_ns=0), status=WaitStatus(0), process_exit=True)
    assert plain().line(ev) == row("exit", "process exit 0")


def test_exit_colour_is_green_for_zero_and_red_otherwise():
    codes = ansi_codes()
    renderer = StreamRenderer(CLOCK, color=True)
    ok = renderer.line(ExitEvent(**common(), status=WaitStatus(0), process_exit=True))
    bad = renderer.line(ExitEvent(**common(), status=WaitStatus(1 << 8), process_exit=True))
    killed = renderer.line(ExitEvent(**common(), status=WaitStatus(15), process_exit=True))
    assert codes["exit_ok"][0] in ok and codes["exit_bad"][0] not in ok
    assert codes["exit_bad"][0] in bad
    assert codes["exit_bad"][0] in killed


def test_signal_generate_names_signal_target_and_target_comm():
    ev = SignalEvent(
        **common(), stage=SIGNAL_GENERATE, signo=15, code=0, target_pid=1240, target_comm=b"sleep", group=True
    )
    assert plain().line(ev) == row("signal", "SIGTERM -> 1240 (sleep)")


def test_ptrace_stops_folded_in_the_kernel_are_one_line_naming_the_tracer():
    ev = SignalSummaryEvent(
        **common(), reason=FOLD_PTRACE, signo=17, target_pid=900, target_comm=b"strace", count=20118, first_ns=0
    )
    ev.last_ns = ev.first_ns + 998_100_000
    assert plain().line(ev) == row("signal", "20,118 ptrace stops -> tracer 900 (strace) in 998.1ms (SIGCHLD, folded)")


def test_signals_beyond_the_rate_limit_are_counted_on_one_line():
    gen = SignalSummaryEvent(**common(), reason=FOLD_RATE, signo=10, target_pid=77, target_comm=b"sleep", count=52000)
    assert plain().line(gen) == row("signal", "SIGUSR1 -> 77 (sleep): 52,000 more beyond the rate limit in 0ns")
    got = SignalSummaryEvent(**common(), reason=FOLD_RATE, stage=SIGNAL_DELIVER, signo=10, target_pid=1234, count=3)
    assert plain().line(got) == row("signal", "SIGUSR1 delivered: 3 more beyond the rate limit in 0ns")


def test_signal_generate_to_one_thread_says_thread():
    ev = SignalEvent(**common(), stage=SIGNAL_GENERATE, signo=10, code=-6, target_pid=1241, target_comm=b"worker")
    assert plain().line(ev) == row("signal", "SIGUSR1 -> thread 1241 (worker)")


def test_signal_generate_shows_result_when_not_delivered():
    ev = SignalEvent(
        **common(), stage=SIGNAL_GENERATE, signo=1, target_pid=1240, target_comm=b"nohup", group=True, result=1
    )
    pending = SignalEvent(
        **common(), stage=SIGNAL_GENERATE, signo=2, target_pid=1240, target_comm=b"x", group=True, result=2
    )
    assert plain().line(ev) == row("signal", "SIGHUP -> 1240 (nohup) ignored")
    assert plain().line(pending) == row("signal", "SIGINT -> 1240 (x) already pending")


def test_kernel_generated_signal_says_it_has_no_sending_task():
    ev = SignalEvent(**common(), stage=SIGNAL_GENERATE, signo=11, code=1, target_pid=1234, target_comm=b"bash")
    assert plain().line(ev) == row("signal", "SIGSEGV -> thread 1234 (bash) from kernel")


@pytest.mark.parametrize(
    ("signo", "handler", "detail"),
    [
        (19, 0, "SIGSTOP delivered, default action"),
        (2, 1, "SIGINT delivered, ignored"),
        (10, 0x401136, "SIGUSR1 delivered to handler"),
    ],
)
def test_signal_deliver_names_the_disposition(signo: int, handler: int, detail: str):
    ev = SignalEvent(**common(), stage=SIGNAL_DELIVER, signo=signo, handler=handler, target_pid=1234)
    assert plain().line(ev) == row("signal", detail)


def test_group_exit_sigkill_names_the_signal_that_caused_it():
    ev = SignalEvent(**common(), stage=SIGNAL_DELIVER, signo=9, group_exit_signo=15, target_pid=1234)
    assert plain().line(ev) == row("signal", "SIGKILL (group exit by SIGTERM) delivered")


def test_group_exit_by_sigkill_itself_is_not_called_a_cause_of_itself():
    ev = SignalEvent(**common(), stage=SIGNAL_DELIVER, signo=9, group_exit_signo=9, target_pid=1234)
    assert plain().line(ev) == row("signal", "SIGKILL delivered (group exit)")


def test_reap_names_the_reaped_pid_and_its_status():
    ev = ReapEvent(**common(), reaped_pid=1235, status=WaitStatus(7 << 8))
    killed = ReapEvent(**common(), reaped_pid=1236, status=WaitStatus(9))
    assert plain().line(ev) == row("reap", "reaped 1235 (exit 7)")
    assert plain().line(killed) == row("reap", "reaped 1236 (killed by SIGKILL)")


def test_lines_have_no_trailing_newline():
    assert "\n" not in plain().line(ReapEvent(**common(), reaped_pid=1))


# ---------------------------------------------------------------------------
# Colour


def sample_events() -> list:
    return [
        ForkEvent(**common(), child_pid=1235, child_tgid=1235, child_ppid=1234),
        ExecEvent(**common(), filename=b"/bin/ls", argv=[b"ls"]),
        ExecEvent(**common(), filename=b"/x", argv=[b"x"], errno=13),
        ExitEvent(**common(), status=WaitStatus(0), process_exit=True),
        ExitEvent(**common(), status=WaitStatus(15), process_exit=True),
        SignalEvent(**common(), stage=SIGNAL_GENERATE, signo=15, target_pid=9, group=True),
        SignalEvent(**common(), stage=SIGNAL_DELIVER, signo=9, group_exit_signo=15, target_pid=9),
        ReapEvent(**common(), reaped_pid=1235),
        hostile_exec(),
    ]


def strip_our_codes(text: str) -> str:
    for on, off in ansi_codes().values():
        for code in (on, off):
            if code:
                text = text.replace(code, "")
    return text


def test_colour_lines_differ_from_plain_only_by_our_ansi_codes():
    colored, uncolored = StreamRenderer(CLOCK, color=True), plain()
    for ev in sample_events():
        line = colored.line(ev)
        assert "\x1b[" in line
        assert strip_our_codes(line) == uncolored.line(ev)


def test_every_colour_code_is_a_plain_sgr_sequence():
    for on, off in ansi_codes().values():
        for code in (on, off):
            assert code == "" or re.fullmatch(r"\x1b\[[0-9;]*m", code)


def test_colour_kinds_are_distinct():
    codes = ansi_codes()
    roles = ["fork", "exec", "exec_failed", "exit_ok", "signal_generate", "signal_deliver"]
    assert len({codes[role][0] for role in roles}) == len(roles)


def test_colour_header_is_styled_and_otherwise_the_plain_header():
    header = StreamRenderer(CLOCK, color=True).header()
    assert header != plain().header()
    assert strip_our_codes(header) == plain().header()


# ---------------------------------------------------------------------------
# Hostile strings


def hostile_exec() -> ExecEvent:
    return ExecEvent(
        **common(comm=b"\x1b[2J\x1b]0;t\x07"),
        filename=b"/tmp/\x1b]0;title\x07",
        argv=[b"[red]x[/]", b"[link=http://x]y", b"a\rb\nc\td", b"\xff\xfe", "\u202eevil".encode()],
    )


def test_hostile_strings_in_a_line_are_escaped_and_markup_is_literal():
    line = plain().line(hostile_exec())
    assert line == row(
        "exec",
        "$'/tmp/\\x1b]0;title\\x07' '[red]x[/]' '[link=http://x]y' $'a\\rb\\nc\\td' $'\\xff\\xfe' $'\\u202eevil'",
        comm="\\x1b[2J\\x1b]0;t\\x07",
    )


def test_hostile_strings_in_colour_mode_bring_no_escape_sequence_of_their_own():
    line = StreamRenderer(CLOCK, color=True).line(hostile_exec())
    rest = strip_our_codes(line)
    assert "\x1b" not in rest
    assert rest.isprintable()
    assert "[red]x[/]" in rest and "[link=http://x]y" in rest


def test_hostile_target_comm_of_a_signal_is_escaped():
    ev = SignalEvent(**common(), stage=SIGNAL_GENERATE, signo=15, target_pid=9, target_comm=b"\x1b[31mred", group=True)
    assert plain().line(ev) == row("signal", "SIGTERM -> 9 (\\x1b[31mred)")


def test_every_line_is_printable_text():
    renderer = plain()
    for ev in sample_events():
        assert renderer.line(ev).isprintable()


# ---------------------------------------------------------------------------
# Long values


def test_very_long_argument_is_cut_with_a_count_of_what_is_hidden():
    ev = ExecEvent(**common(), filename=b"/bin/echo", argv=[b"echo", b"x" * 100_000])
    detail = plain().line(ev).removeprefix(row("exec", ""))
    shown = DETAIL_MAX - len("/bin/echo echo ")
    assert detail == "/bin/echo echo " + "x" * shown + f"…(+{100_000 - shown} bytes)"


def test_many_arguments_are_cut_at_the_display_maximum():
    argv = [b"arg%d" % i for i in range(5000)]
    ev = ExecEvent(**common(), filename=b"/bin/echo", argv=argv)
    detail = plain().line(ev).removeprefix(row("exec", ""))
    assert len(detail) <= DETAIL_MAX + 40
    shown, marker = detail.split("…")
    words = shown.split(" ")[1:]
    partial = words[-1]
    shown_full = len(words) - 1
    hidden_args = len(argv) - shown_full - 1
    hidden_bytes = len(argv[shown_full]) - len(partial) + sum(len(a) for a in argv[shown_full + 1 :])
    assert words[:-1] == [a.decode() for a in argv[:shown_full]]
    assert marker == f"(+{hidden_bytes} bytes, {hidden_args} more args)"


def test_cut_of_a_long_argument_never_splits_a_utf8_character_or_an_escape():
    for raw in ("é" * 5000).encode(), b"\x1b" * 5000:
        ev = ExecEvent(**common(), filename=b"/bin/echo", argv=[raw])
        detail = plain().line(ev).split("/bin/echo ", 1)[1]
        quoted, marker = detail.split("…(+")
        assert quoted.startswith(("'", "$'")) and quoted.endswith("'")
        assert unescape(quoted.removeprefix("$").strip("'")) == raw[: len(raw) - int(marker.split()[0])]
        assert len(detail) <= DETAIL_MAX + 20


def test_width_cuts_each_line_to_that_many_cells():
    renderer = StreamRenderer(CLOCK, color=False, width=80)
    long_exec = ExecEvent(**common(), filename="/日本/語".encode(), argv=[b"x" * 200])
    short = ReapEvent(**common(), reaped_pid=1)
    line = renderer.line(long_exec)
    assert cell_len(line) == 80 and line.endswith("…")
    assert line.startswith(row("exec", "'/日本/語' xxx"))
    assert renderer.line(short) == plain().line(short)
    assert cell_len(renderer.header()) <= 80


def test_width_in_colour_mode_counts_only_visible_cells():
    renderer = StreamRenderer(CLOCK, color=True, width=70)
    line = renderer.line(ExecEvent(**common(), filename=b"/bin/echo", argv=[b"y" * 200]))
    assert cell_len(strip_our_codes(line)) == 70


# ---------------------------------------------------------------------------
# The status line


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1

    def fileno(self) -> int:
        raise OSError("not a real terminal")


def test_sink_off_a_tty_writes_each_batch_plainly_with_one_flush():
    stream = RecordingStream()
    sink = Terminal(stream, tty=False)  # type: ignore[arg-type]
    sink.set_status("10 events/s")
    sink.write_lines(["a", "b"])
    assert "".join(stream.writes) == "a\nb\n" and stream.flushes == 1
    sink.write_lines([])
    sink.close()
    assert "".join(stream.writes) == "a\nb\n" and stream.flushes == 1


def test_sink_on_a_tty_keeps_the_status_line_at_the_bottom():
    stream = RecordingStream()
    sink = Terminal(stream, tty=True)  # type: ignore[arg-type]
    sink.write_lines(["first"])
    sink.set_status("10 events/s")
    sink.write_lines(["a", "b"])
    sink.close()
    assert stream.writes == [
        "first\n",
        "\r\x1b[K10 events/s",
        "\r\x1b[Ka\nb\n10 events/s",
        "\r\x1b[K",
    ]


def test_sink_status_line_never_wraps_and_carries_no_control_characters():
    stream = RecordingStream()
    sink = Terminal(stream, tty=True, width=20)  # type: ignore[arg-type]
    sink.set_status("x\x1b[2J" + "y" * 40)
    status = stream.writes[-1].removeprefix("\r\x1b[K")
    assert status == "x\\x1b[2Jyyyyyyyyyy…"
    assert len(status) == 19


def test_sink_writes_nothing_for_an_empty_batch():
    stream = RecordingStream()
    sink = Terminal(stream, tty=True)  # type: ignore[arg-type]
    sink.set_status("s")
    sink.write_lines([])
    assert stream.writes == ["\r\x1b[Ks"]


def test_a_utf8_file_takes_the_lines_as_bytes_in_order_with_the_text_written_around_them(tmp_path):
    with open(tmp_path / "out", "w", encoding="utf-8", errors="surrogateescape") as stream:
        sink = Terminal(stream, tty=False)
        assert sink.binary is stream.buffer and sink.errors == "surrogateescape"
        sink.write_lines(["header"])
        sink.write_text(b"a 12.0\xc2\xb5s\nb\n")
        sink.write_lines(["*** lost"])
        sink.write_text(b"")
        sink.write_text(b"c\n")
    assert (tmp_path / "out").read_bytes() == b"header\na 12.0\xc2\xb5s\nb\n*** lost\nc\n"


def test_a_tty_takes_the_bytes_with_the_status_line_kept_at_the_bottom(tmp_path):
    with open(tmp_path / "out", "w", encoding="utf-8") as stream:
        sink = Terminal(stream, tty=True)
        sink.write_text(b"first\n")
        sink.set_status("10 events/s")
        sink.write_text(b"a\nb\n")
        sink.close()
    assert (tmp_path / "out").read_bytes() == b"first\n\r\x1b[K10 events/s\r\x1b[Ka\nb\n10 events/s\r\x1b[K"


def test_only_a_utf8_stream_with_a_buffer_takes_bytes(tmp_path):
    import io

    assert Terminal(io.StringIO(), tty=False).binary is None
    with open(tmp_path / "latin", "w", encoding="latin-1") as stream:
        assert Terminal(stream, tty=False).binary is None
    with open(tmp_path / "utf8", "w", encoding="UTF8") as stream:
        assert Terminal(stream, tty=False).binary is stream.buffer


# ---------------------------------------------------------------------------
# Memory


def test_renderer_caches_stay_bounded_over_a_long_trace():
    renderer = plain()
    for i in range(20_000):
        renderer.line(
            ExecEvent(**common(pid=i + 1, tgid=i + 1, ppid=i, comm=b"c%d" % i), filename=b"/f%d" % i, argv=[b"a%d" % i])
        )
    for i in range(20_000):  # PATH misses of threads whose exec never comes
        renderer.line(
            ExecEvent(**common(pid=i + 1), filename=b"/a/x", argv=[b"x"], errno=2, old_pid=i + 1, path_search=True)
        )
    caches = [value for value in vars(renderer).values() if isinstance(value, dict)]
    assert len(caches) >= 5
    assert all(len(cache) <= 4096 for cache in caches)


def test_wide_characters_in_comm_keep_the_columns_aligned():
    line = plain().line(ReapEvent(**common(comm="日本語".encode()), reaped_pid=1))
    assert line == row("reap", "reaped 1 (exit 0)", comm="日本語" + " " * 9)
    assert cell_len(line) == cell_len(plain().line(ReapEvent(**common(), reaped_pid=1)))


# ---------------------------------------------------------------------------
# Contexts, credential changes and cgroups

USER_CREDS = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)
ROOT_CREDS = Credentials(1000, 0, 0, 0, 1000, 1000, 1000, 1000, ALL_CAPABILITIES)
DOCKER_ID = "3f4e5a6b7c8d" + "0" * 52


def exec_in(cgroup: bytes | None, before: Credentials = USER_CREDS, after: Credentials = USER_CREDS) -> ExecEvent:
    ctx = ProcessContext(cwd=b"/tmp", creds=after, creds_before=before, cgroup=cgroup)
    return ExecEvent(**common(comm=b"sudo"), filename=b"/usr/bin/sudo", argv=[b"sudo", b"id"], context=ctx)


def test_an_exec_names_its_container_by_the_short_id() -> None:
    ev = exec_in(f"/system.slice/docker-{DOCKER_ID}.scope".encode())
    assert plain().line(ev) == row("exec", "/usr/bin/sudo sudo id [container 3f4e5a6b7c8d]", comm="sudo           ")


def test_an_exec_outside_a_container_names_its_unit_and_outside_any_unit_nothing() -> None:
    ev = exec_in(b"/system.slice/nginx.service")
    assert plain().line(ev) == row("exec", "/usr/bin/sudo sudo id [nginx.service]", comm="sudo           ")
    assert plain().line(exec_in(b"/")) == row("exec", "/usr/bin/sudo sudo id", comm="sudo           ")
    assert plain().line(exec_in(None)) == row("exec", "/usr/bin/sudo sudo id", comm="sudo           ")


def test_a_hostile_unit_name_is_escaped() -> None:
    line = plain().line(exec_in(b"/system.slice/\x1b[31mx.service"))
    assert "\x1b" not in line and line.endswith("[\\x1b[31mx.service]")


def test_an_exec_that_gains_privilege_says_what_it_gained() -> None:
    ev = exec_in(b"/user.slice/user-1000.slice/session-2.scope", before=USER_CREDS, after=ROOT_CREDS)
    detail = "/usr/bin/sudo sudo id (privilege gain: euid 1000->0, +all capabilities) [session-2.scope]"
    assert plain().line(ev) == row("exec", detail, comm="sudo           ")
    on, off = ansi_codes()["privilege"]
    assert on and f"{on}{detail}{off}" in StreamRenderer(CLOCK, color=True).line(ev)


def test_a_file_capability_gain_names_the_capabilities() -> None:
    after = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1 << 13 | 1 << 10)  # net_raw, net_bind_service
    ev = exec_in(None, after=after)
    assert plain().line(ev).endswith("(privilege gain: +cap_net_bind_service,cap_net_raw)")


def test_a_cred_line_says_each_change_once_and_flags_a_gain() -> None:
    drop = CredEvent(
        **common(uid=0), syscall="setresuid", before=ROOT_CREDS, after=USER_CREDS,
        groups_before=(0, 27), groups_after=(1000,), groups_before_count=2, groups_after_count=1,
    )  # fmt: skip
    assert plain().line(drop) == row("cred", "setresuid: euid,suid,fsuid 0->1000, caps all->none, groups 0,27->1000")
    gain = CredEvent(**common(), syscall="setuid", before=USER_CREDS, after=ROOT_CREDS)
    assert plain().line(gain) == row(
        "cred", "setuid: euid,suid,fsuid 1000->0, caps none->all (privilege gain: euid 1000->0, +all capabilities)"
    )


def test_a_cred_line_says_groups_it_could_not_all_read() -> None:
    ev = CredEvent(
        **common(), syscall="setgroups", before=USER_CREDS, after=USER_CREDS,
        groups_before=(), groups_after=tuple(range(16)), groups_before_count=0, groups_after_count=20,
    )  # fmt: skip
    assert plain().line(ev).endswith("setgroups: groups none->0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15…(+4)")


def test_cgroup_lines() -> None:
    made = CgroupEvent(**common(), action=CGROUP_MKDIR, target_id=5123, path=b"/system.slice/docker-x.scope")
    assert plain().line(made) == row("cgroup", "made /system.slice/docker-x.scope (id 5123)")
    gone = CgroupEvent(**common(), action=CGROUP_RMDIR, target_id=5123, path=b"/a")
    assert plain().line(gone) == row("cgroup", "removed /a (id 5123)")
    moved = CgroupEvent(**common(), action=CGROUP_RENAME, target_id=7, path=b"/b")
    assert plain().line(moved) == row("cgroup", "renamed to /b (id 7)")


def test_the_kind_column_stays_aligned_for_every_kind() -> None:
    lines = [
        plain().line(ev)
        for ev in (
            CredEvent(**common(), syscall="setuid", before=USER_CREDS, after=USER_CREDS),
            CgroupEvent(**common(), action=CGROUP_MKDIR, target_id=1, path=b"/x"),
            ReapEvent(**common(), reaped_pid=5, status=WaitStatus(0)),
        )
    ]
    assert {line.index(" 1234 ") for line in lines} == {len(PREFIX) + 1 + 6}
