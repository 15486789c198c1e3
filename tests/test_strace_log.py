"""tests/strace_log.py on canned `strace -f` output, written the way strace 6.1 (Debian 12) writes it."""

from __future__ import annotations

import pytest

from tests.strace_log import (
    STRACE_FLAGS,
    ExecAttempt,
    StraceLogError,
    decode_c_string,
    expected_argv,
    parse_strace_log,
    script_interpreter,
    split_arguments,
)


def hx(text: str) -> str:
    """A string as `strace -xx` prints it: every byte as \\xHH, in quotes."""
    return '"' + "".join(f"\\x{b:02x}" for b in text.encode()) + '"'


def execve(path: str, *argv: str) -> str:
    return f"execve({hx(path)}, [{', '.join(hx(a) for a in argv)}], 0x7ffc470c0c40 /* 35 vars */"


def log(*lines: str) -> list[str]:
    return [line + "\n" for line in lines]


THREAD_CLONE = (
    "clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS"
    "|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7fd39956b990, parent_tid=0x7fd39956b990, "
    "exit_signal=0, stack=0x7fd398d6b000, stack_size=0x7fff80, tls=0x7fd39956b6c0}"
)
FORK_CLONE = "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7fd3)"


def test_flags_keep_exit_lines_and_the_syscall_flood():
    assert "-f" in STRACE_FLAGS and "-xx" in STRACE_FLAGS
    assert "-qq" not in STRACE_FLAGS, "-qq hides `+++ exited with N +++`"
    assert not any(flag.startswith("--seccomp") for flag in STRACE_FLAGS), "seccomp would stop the flood"
    assert not any("signal=" in flag for flag in STRACE_FLAGS), "`+++ killed by` needs its signal shown"


def test_a_path_search_is_failures_then_one_success():
    parsed = parse_strace_log(
        log(
            f"100   1796161619.1 {execve('/usr/bin/python3', 'python3', 'w.py')}) = 0",
            f"100   1796161619.2 {FORK_CLONE} = 101",
            f"101   1796161619.3 {execve('/nonexistent/a/true', 'true')}) = -1 ENOENT (No such file or directory)",
            f"101   1796161619.4 {execve('/usr/bin/true', 'true')}) = 0",
            "101   1796161619.5 +++ exited with 0 +++",
            "100   1796161619.6 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101, si_status=0} ---",
            "100   1796161619.7 +++ exited with 0 +++",
        )
    )
    assert parsed.first_pid == 100
    assert [(e.pid, e.filename, e.argv, e.result, e.errno) for e in parsed.execs] == [
        (100, b"/usr/bin/python3", (b"python3", b"w.py"), 0, None),
        (101, b"/nonexistent/a/true", (b"true",), -1, "ENOENT"),
        (101, b"/usr/bin/true", (b"true",), 0, None),
    ]
    assert parsed.execs[1].timestamp == "1796161619.3"
    assert [(e.pid, e.how, e.exit_code, e.process_exit) for e in parsed.ends] == [
        (101, "exited", 0, True),
        (100, "exited", 0, True),
    ]


def test_a_split_call_is_joined_across_other_tasks_lines():
    parsed = parse_strace_log(
        log(
            "100 vfork( <unfinished ...>",
            f"101 {execve('/bin/sh', 'sh', '-c', 'exit 3')} <unfinished ...>",
            "100 <... vfork resumed>) = 101",
            "101 <... execve resumed>) = 0",
            "101 +++ exited with 3 +++",
        )
    )
    (attempt,) = parsed.execs
    assert (attempt.pid, attempt.result_pid, attempt.argv, attempt.succeeded) == (
        101,
        101,
        (b"sh", b"-c", b"exit 3"),
        True,
    )
    assert [(e.pid, e.exit_code, e.process_exit) for e in parsed.ends] == [(101, 3, True)]


def test_deaths_by_signal_with_and_without_core():
    parsed = parse_strace_log(
        log(
            f"100 {FORK_CLONE} = 101",
            f"100 {FORK_CLONE} = 102",
            "101 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---",
            "101 +++ killed by SIGSEGV +++",
            "102 +++ killed by SIGABRT (core dumped) +++",
            f"100 {FORK_CLONE} = 103",
            "103 +++ killed by SIGRT_3 +++",
            "100 +++ exited with 0 +++",
        )
    )
    assert [(e.pid, e.how, e.signal, e.core_dumped, e.exit_code) for e in parsed.ends] == [
        (101, "killed", "SIGSEGV", False, None),
        (102, "killed", "SIGABRT", True, None),
        (103, "killed", "SIGRT_3", False, None),
        (100, "exited", None, False, 0),
    ]


def test_a_threads_exec_moves_to_the_leader_and_its_end_is_no_process_exit():
    # strace 6.1's own output for a thread (5001) of 4999 that execs /bin/true
    # while another thread (5000) is running.
    parsed = parse_strace_log(
        log(
            f"4998 {FORK_CLONE} = 4999",
            f"4999 {THREAD_CLONE} => {{parent_tid=[5000]}}, 88) = 5000",
            f"4999 {THREAD_CLONE} => {{parent_tid=[5001]}}, 88) = 5001",
            f"5001 {execve('/bin/true', 'true', 'from thread')} <unfinished ...>",
            "5000 +++ exited with 0 +++",
            "4999 +++ superseded by execve in pid 5001 +++",
            "4999 <... execve resumed>) = 0",
            "4999 +++ exited with 0 +++",
            "4998 +++ exited with 0 +++",
        )
    )
    (attempt,) = parsed.execs
    assert (attempt.pid, attempt.result_pid, attempt.from_thread) == (5001, 4999, True)
    assert attempt.argv == (b"true", b"from thread")
    assert [(e.pid, e.how, e.process_exit) for e in parsed.ends] == [
        (5000, "exited", False),
        (4999, "superseded", False),
        (4999, "exited", True),
        (4998, "exited", True),
    ]


def test_strace_6s_pid_changed_form_of_a_threads_exec():
    parsed = parse_strace_log(
        log(
            f"4436 {FORK_CLONE} = 4509",
            f"4509 {THREAD_CLONE}, 88) = 4510",
            f"4510 {execve('/bin/echo', 'echo', 'x')} <pid changed to 4509 ...>",
            "4509 +++ superseded by execve in pid 4510 +++",
            "4509 <... execve resumed>) = 0",
            "4509 +++ exited with 0 +++",
        )
    )
    ((attempt,), ends) = parsed.execs, parsed.ends
    assert (attempt.pid, attempt.result_pid, attempt.filename) == (4510, 4509, b"/bin/echo")
    assert [(e.how, e.process_exit) for e in ends] == [("superseded", False), ("exited", True)]


def test_a_leader_that_ends_first_is_reported_last_with_the_process_status():
    # The kernel reports a leader to its tracer only when its thread group is gone.
    parsed = parse_strace_log(
        log(
            f"5006 {THREAD_CLONE} => {{parent_tid=[5007]}}, 88) = 5007",
            "5007 +++ exited with 6 +++",
            "5006 +++ exited with 6 +++",
        )
    )
    assert [(e.pid, e.process_exit) for e in parsed.process_exits()] == [(5006, True)]


def test_a_child_seen_before_its_creators_clone_returns():
    parsed = parse_strace_log(
        log(
            "100 clone3({flags=CLONE_VM|CLONE_VFORK|CLONE_CLEAR_SIGHAND, exit_signal=SIGCHLD}, 88 <unfinished ...>",
            f"101 {execve('/bin/false', 'false')}) = 0",
            "101 +++ exited with 1 +++",
            "100 <... clone3 resumed>) = 101",
            f"100 {THREAD_CLONE}, 88 <unfinished ...>",
            "102 +++ exited with 0 +++",
            "100 <... clone3 resumed> => {parent_tid=[102]}, 88) = 102",
        )
    )
    assert [(e.pid, e.process_exit) for e in parsed.ends] == [(101, True), (102, False)]
    assert [(c.pid, c.child, c.thread) for c in parsed.clones] == [(100, 101, False), (100, 102, True)]


def test_a_reused_pid_is_a_new_task():
    parsed = parse_strace_log(
        log(
            f"100 {THREAD_CLONE}, 88) = 101",
            "101 +++ exited with 0 +++",
            f"100 {FORK_CLONE} = 101",
            "101 +++ exited with 2 +++",
        )
    )
    assert [(e.exit_code, e.process_exit) for e in parsed.ends] == [(0, False), (2, True)]


def test_restarted_and_failed_clones_make_no_task():
    parsed = parse_strace_log(
        log(
            f"100 {FORK_CLONE} = ? ERESTARTNOINTR (To be restarted)",
            f"100 {FORK_CLONE} = -1 EAGAIN (Resource temporarily unavailable)",
            f"100 {FORK_CLONE} = 101",
            "101 +++ exited with 0 +++",
        )
    )
    assert [(e.pid, e.process_exit) for e in parsed.ends] == [(101, True)]
    assert [(c.pid, c.child) for c in parsed.clones] == [(100, 101)]


def test_an_end_of_a_task_with_no_known_creator_is_an_error():
    with pytest.raises(StraceLogError, match="creation"):
        parse_strace_log(log("100 +++ exited with 0 +++", "101 +++ exited with 0 +++"))


def test_a_resume_without_a_start_is_an_error():
    with pytest.raises(StraceLogError, match="resumed"):
        parse_strace_log(log("100 <... execve resumed>) = 0"))


def test_a_line_without_a_pid_is_an_error():
    with pytest.raises(StraceLogError, match="pid"):
        parse_strace_log(log(f"{execve('/bin/true', 'true')}) = 0"))


def test_failed_execs_keep_their_errno_and_the_caller():
    parsed = parse_strace_log(
        log(
            f"100 {execve('/tmp/x/not-executable', 'not-executable')}) = -1 EACCES (Permission denied)",
            f"100 {execve('/tmp/x/garbage', 'garbage')}) = -1 ENOEXEC (Exec format error)",
            "100 execve(0x1, 0x2, 0x3) = -1 EFAULT (Bad address)",
        )
    )
    assert [(e.pid, e.result_pid, e.filename, e.errno, e.result) for e in parsed.execs] == [
        (100, 100, b"/tmp/x/not-executable", "EACCES", -1),
        (100, 100, b"/tmp/x/garbage", "ENOEXEC", -1),
        (100, 100, None, "EFAULT", -1),
    ]
    assert parsed.execs[2].argv is None


def test_a_cut_argv_is_not_whole():
    parsed = parse_strace_log(
        log(
            f'100 execve({hx("/bin/echo")}, [{hx("echo")}, "\\x61\\x62"...], 0x7ff /* 1 var */) = 0',
            f"100 execve({hx('/bin/echo')}, [{hx('echo')}, ...], 0x7ff /* 1 var */) = 0",
        )
    )
    assert [e.argv for e in parsed.execs] == [None, None]
    assert parsed.execs[0].filename == b"/bin/echo"


def test_a_call_left_unfinished_at_the_end_of_the_log_is_reported():
    parsed = parse_strace_log(log(f"100 {execve('/bin/true', 'true')} <unfinished ...>"))
    assert parsed.execs == ()
    assert len(parsed.never_resumed) == 1


def test_a_task_killed_inside_exec_has_an_exec_of_unseen_outcome():
    # Seen in CPython's test_subprocess: a child killed just after starting a call.
    parsed = parse_strace_log(
        log(
            f"100 {execve('/bin/true', 'true')} <unfinished ...>",
            "100 +++ killed by SIGKILL +++",
            f"100 {FORK_CLONE} = 101",
            f"101 {execve('/bin/true', 'true')}) = 0",
            "101 ???( <unfinished ...>",
            "101 +++ killed by SIGKILL +++",
        )
    )
    assert [(e.pid, e.result, e.filename, e.line) for e in parsed.execs] == [
        (100, None, b"/bin/true", 2),
        (101, 0, b"/bin/true", 4),
    ]
    assert (parsed.never_resumed, [e.signal for e in parsed.ends]) == ((), ["SIGKILL", "SIGKILL"])


def test_a_call_that_the_task_died_in_has_no_result():
    parsed = parse_strace_log(log(f"100 {execve('/bin/true', 'true')}) = ?", "100 +++ killed by SIGKILL +++"))
    (attempt,) = parsed.execs
    assert (attempt.result, attempt.succeeded, attempt.errno) == (None, False, None)


def test_a_call_strace_could_not_name_is_counted_not_parsed():
    parsed = parse_strace_log(
        log(
            "100 ???( <unfinished ...>",
            "100 <... ??? resumed>) = ?",
            "100 +++ killed by SIGKILL +++",
        )
    )
    assert (parsed.execs, parsed.unknown_calls, parsed.never_resumed) == ((), (2,), ())


def test_informational_lines_are_skipped():
    parsed = parse_strace_log(
        log(
            "100 [ Process PID=100 runs in 32 bit mode. ]",
            "100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101} ---",
            "100 <detached ...>",
            "100 +++ exited with 0 +++",
        )
    )
    assert parsed.execs == () and len(parsed.ends) == 1


def test_execveat_and_the_name_the_kernel_gives_it():
    parsed = parse_strace_log(
        log(
            f"100 execveat(3, {hx('')}, [{hx('x')}], 0x7ff /* 1 var */, AT_EMPTY_PATH) = 0",
            f"100 execveat(4, {hx('bin/true')}, [{hx('true')}], 0x7ff /* 1 var */, 0) = 0",
            f"100 execveat(AT_FDCWD, {hx('/bin/true')}, [{hx('true')}], 0x7ff /* 1 var */, 0) = 0",
            f"100 execveat(5, {hx('/bin/true')}, [{hx('true')}], 0x7ff /* 1 var */, 0) = 0",
        )
    )
    assert [(e.dirfd, e.filename, e.kernel_filename()) for e in parsed.execs] == [
        ("3", b"", b"/dev/fd/3"),
        ("4", b"bin/true", b"/dev/fd/4/bin/true"),
        ("AT_FDCWD", b"/bin/true", b"/bin/true"),
        ("5", b"/bin/true", b"/bin/true"),
    ]


def test_strings_decode_every_escape_to_bytes():
    assert decode_c_string(r"\x2f\x62\xff") == b"/b\xff"
    assert decode_c_string(r"a\n\t\"\\b\0\177\33") == b'a\n\t"\\b\x00\x7f\x1b'


def test_arguments_split_only_at_top_level():
    assert split_arguments('"a,b", [1, 2], {x=1, y=2}, 0x7ff /* 3, vars */, 0') == [
        '"a,b"',
        "[1, 2]",
        "{x=1, y=2}",
        "0x7ff /* 3, vars */",
        "0",
    ]
    assert split_arguments("") == []


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"#!/bin/sh\nexit 0\n", (b"/bin/sh", None)),
        (b"#! /bin/sh -e  \n", (b"/bin/sh", b"-e")),
        (b"#!/usr/bin/env python3 -X dev\n", (b"/usr/bin/env", b"python3 -X dev")),
        (b"#!\t/bin/bash\t-x\n", (b"/bin/bash", b"-x")),
        (b"#!\n", None),
        (b"\x7fELF\x02\x01", None),
    ],
)
def test_the_interpreter_of_a_script(head, expected):
    assert script_interpreter(head) == expected


def attempt(filename: bytes, *argv: bytes) -> ExecAttempt:
    return ExecAttempt(1, 100, 100, "execve", None, filename, argv, 0, None, None)


def test_expected_argv_of_a_binary_and_of_scripts():
    files = {
        b"/bin/true": b"\x7fELF",
        b"/bin/sh": b"\x7fELF",
        b"/tmp/s.sh": b"#!/bin/sh -e\nexit 9\n",
        b"/tmp/nested": b"#!/tmp/s.sh\n",
    }
    assert expected_argv(attempt(b"/bin/true", b"true", b"x"), files.get) == (b"true", b"x")
    assert expected_argv(attempt(b"/tmp/s.sh", b"s.sh", b"a"), files.get) == (b"/bin/sh", b"-e", b"/tmp/s.sh", b"a")
    assert expected_argv(attempt(b"/tmp/nested", b"n"), files.get) == (
        b"/bin/sh",
        b"-e",
        b"/tmp/s.sh",
        b"/tmp/nested",
    )
    assert expected_argv(attempt(b"/bin/true"), files.get) == (b"",), "an empty argv gets an empty argv[0]"


def test_expected_argv_is_unknown_when_a_file_cannot_be_read_or_the_path_is_relative():
    assert expected_argv(attempt(b"/gone", b"gone"), {}.get) is None
    assert expected_argv(attempt(b"./here", b"here"), {b"./here": b"\x7fELF"}.get) is None
