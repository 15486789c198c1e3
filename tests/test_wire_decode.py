"""tracer/kernel/wire.py decoding raw event bytes, and the event records of tracer/model/events.py.

Every test here runs twice: with the Python decoder and with the compiled one
(tracer/kernel/_fastwire.c), which must decode every record, and reject every
bad one, exactly as the Python decoder does. tests/test_fastwire.py compares
the two on many more records.
"""

from __future__ import annotations

import mmap
import os
import signal
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proctrace.kernel import wire
from proctrace.kernel.wire import DecodeError, decode, split_argv
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CLONE_PARENT,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    FOLD_PTRACE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
    errno_name,
    signal_name,
)

from tests.environment import requires


@pytest.fixture(autouse=True, params=["python", "compiled"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """wire.decode_at (which decode() and every caller use) as each decoder."""
    if request.param == "compiled":
        requires(wire.COMPILED is not None, f"the compiled wire decoder: {wire.DECODER}")
        monkeypatch.setattr(wire, "decode_at", wire.COMPILED.decode_at)
    else:
        monkeypatch.setattr(wire, "decode_at", wire.decode_at_python)
    return request.param


def fmt(name: str) -> str:
    return wire.LAYOUTS[name][0]


def header(
    kind: int,
    *,
    ts=5_000_000_000,
    start=1_000_000_000,
    pid=4242,
    tgid=4240,
    ppid=1,
    uid=1000,
    cpu=3,
    comm=b"bash",
    cgroup_id=777,
):
    return struct.pack(fmt("pt_header"), ts, start, kind, pid, tgid, ppid, uid, cpu, comm, cgroup_id)


CRED = (1000, 1001, 1002, 1003, 100, 101, 102, 103, 0x1F)
CRED_BEFORE = (1000, 1000, 1000, 1000, 100, 100, 100, 100, 0)


def exec_event(
    filename: bytes,
    argv_area: bytes,
    *,
    err=0,
    old_pid=4242,
    flags=0,
    flen=None,
    alen=None,
    extra=b"",
    env_area=b"",
    cwd_area=b"",
    tty_dev=0,
    ids=(0, 0, 0, 0, 0, 0, 0),  # sid, login_uid, login_session, pidns, ns_pid, mntns, _pad
    exe=(0, 0),  # exe_ino, exe_dev
):
    flen = len(filename) if flen is None else flen
    alen = len(argv_area) if alen is None else alen
    body = struct.pack(
        fmt("pt_exec"),
        err, old_pid, flags, flen, alen, len(cwd_area), len(env_area), tty_dev,
        *CRED, *CRED_BEFORE, *exe, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], 0,
    )  # fmt: skip
    return header(wire.KIND_EXEC) + body + filename + argv_area + env_area + cwd_area + extra


def fork_event(clone_flags: int, child_pid=5000, child_tgid=5000, child_ppid=4240) -> bytes:
    return header(wire.KIND_FORK) + struct.pack(fmt("pt_fork"), clone_flags, child_pid, child_tgid, child_ppid, 0)


NO_USAGE = (0,) * 12


def exit_event(
    status: int,
    *,
    group_dead: int,
    task_start=3_000_000_000,
    task_code=0,
    has_usage=0,
    usage=NO_USAGE,
    death=0,
    killer=(0, b""),
    **hdr,
) -> bytes:
    body = struct.pack(
        fmt("pt_exit"), task_start, status, task_code, group_dead, has_usage, death, killer[0], *usage, killer[1]
    )
    return header(wire.KIND_EXIT, **hdr) + body


def signal_event(signo=15, code=0, target=777, result=0, handler=0, gsig=0, stage=1, group=1, tcomm=b"sleep"):
    body = struct.pack(fmt("pt_signal"), signo, code, target, result, handler, gsig, stage, group, tcomm)
    return header(wire.KIND_SIGNAL) + body


def reap_event(reaped: int, status: int, autoreaped: int = 0) -> bytes:
    return header(wire.KIND_REAP) + struct.pack(fmt("pt_reap"), reaped, status, autoreaped)


# --- header ------------------------------------------------------------------------


def test_header_fields_land_in_the_common_event_fields() -> None:
    ev = decode(reap_event(1, 0))
    assert (ev.ts_ns, ev.start_ns, ev.pid, ev.tgid, ev.ppid, ev.uid, ev.cpu) == (
        5_000_000_000,
        1_000_000_000,
        4242,
        4240,
        1,
        1000,
        3,
    )
    assert ev.comm == b"bash"


def test_comm_stops_at_the_first_nul() -> None:
    raw = header(wire.KIND_REAP, comm=b"ab\0stale-bytes!") + struct.pack(fmt("pt_reap"), 1, 0, 0)
    assert decode(raw).comm == b"ab"


def test_comm_filling_all_16_bytes_is_kept_whole() -> None:
    raw = header(wire.KIND_REAP, comm=b"0123456789abcdef") + struct.pack(fmt("pt_reap"), 1, 0, 0)
    assert decode(raw).comm == b"0123456789abcdef"


def test_header_layout_is_64_bytes() -> None:
    # 2 u64 + 6 u32 + comm[16] + the cgroup id, no padding: what struct pt_header is in C.
    assert wire.HEADER_SIZE == 64


@pytest.mark.parametrize("raw", [b"fork", b"exit", b"reap", b"signal"])
def test_every_kind_carries_the_header_cgroup_id(raw: bytes) -> None:
    made = {
        b"fork": fork_event(0),
        b"exit": exit_event(0, group_dead=1),
        b"reap": reap_event(1, 0),
        b"signal": signal_event(),
    }[raw]
    assert decode(made).cgroup_id == 777


# --- exec --------------------------------------------------------------------------

AWKWARD_ARGS = [
    b"printf",
    b"two words",
    b"'single' \"double\"",
    b"line1\nline2\ttab",
    "caf\u00e9 \u65e5\u672c".encode(),
    b"\xff\xfe not utf-8 \xc3",
    b"",
    b"$HOME `x` \\ *",
]


def test_exec_filename_and_argv_bytes_are_exact() -> None:
    area = b"".join(a + b"\0" for a in AWKWARD_ARGS)
    ev = decode(exec_event(b"/usr/bin/printf", area))
    assert isinstance(ev, ExecEvent)
    assert ev.filename == b"/usr/bin/printf"
    assert ev.argv == AWKWARD_ARGS


def test_exec_non_utf8_filename_is_kept_as_bytes() -> None:
    assert decode(exec_event(b"/tmp/\xff\x80x", b"x\0")).filename == b"/tmp/\xff\x80x"


def test_exec_with_no_argument_area_has_empty_argv() -> None:
    ev = decode(exec_event(b"/bin/true", b""))
    assert ev.argv == []
    assert ev.filename == b"/bin/true"


def test_exec_trailing_empty_argument_is_kept() -> None:
    # argv = ["a", ""]: the area is "a\0\0"; only the final terminator is dropped.
    assert decode(exec_event(b"/x", b"a\0\0")).argv == [b"a", b""]


def test_exec_cut_argument_area_without_final_nul_keeps_the_partial_argument() -> None:
    ev = decode(exec_event(b"/x", b"ls\0-l\0/very/lo", flags=wire.EXEC_ARGV_TRUNCATED))
    assert ev.argv == [b"ls", b"-l", b"/very/lo"]
    assert ev.argv_truncated


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (0, (False, False, False)),
        (wire.EXEC_ARGV_TRUNCATED, (True, False, False)),
        (wire.EXEC_FILENAME_TRUNCATED, (False, True, False)),
        (wire.EXEC_ARGV_UNREADABLE, (False, False, True)),
        (7, (True, True, True)),
    ],
)
def test_exec_flags_map_to_their_own_booleans(flags: int, expected: tuple[bool, bool, bool]) -> None:
    ev = decode(exec_event(b"/x", b"x\0", flags=flags))
    assert (ev.argv_truncated, ev.filename_truncated, ev.argv_unreadable) == expected


def test_exec_flag_bits_match_event_h() -> None:
    assert (wire.EXEC_ARGV_TRUNCATED, wire.EXEC_FILENAME_TRUNCATED, wire.EXEC_ARGV_UNREADABLE) == (1, 2, 4)


def test_failed_exec_carries_errno_and_old_pid() -> None:
    ev = decode(exec_event(b"/nope", b"nope\0", err=2, old_pid=4243))
    assert (ev.errno, ev.old_pid, ev.failed) == (2, 4243, True)
    assert not decode(exec_event(b"/bin/true", b"")).failed


def test_exec_ignores_padding_after_its_tail() -> None:
    # The perf buffer pads samples to 8 bytes; lengths, not the buffer end, bound the tail.
    ev = decode(exec_event(b"/bin/ls", b"ls\0", extra=b"\0\0\0\xaa\xbb"))
    assert ev.filename == b"/bin/ls"
    assert ev.argv == [b"ls"]


def test_exec_lengths_past_the_buffer_raise() -> None:
    with pytest.raises(DecodeError):
        decode(exec_event(b"/bin/ls", b"ls\0", alen=4))


def test_exec_shorter_than_its_fixed_part_raises() -> None:
    raw = exec_event(b"", b"")
    with pytest.raises(DecodeError):
        decode(raw[: wire.EXEC.size - 1])


def test_split_argv_of_empty_area_is_empty_list() -> None:
    assert split_argv(b"") == []
    assert split_argv(b"\0") == [b""]  # one empty argument


# --- fork --------------------------------------------------------------------------


def test_fork_decodes_child_ids_and_flags() -> None:
    ev = decode(fork_event(CLONE_VM | CLONE_VFORK, child_pid=5001, child_tgid=5001, child_ppid=4240))
    assert isinstance(ev, ForkEvent)
    assert (ev.child_pid, ev.child_tgid, ev.child_ppid, ev.clone_flags) == (5001, 5001, 4240, CLONE_VM | CLONE_VFORK)


@pytest.mark.parametrize(
    ("flags", "thread"),
    [(0, False), (CLONE_VM | CLONE_VFORK, False), (CLONE_PARENT, False), (CLONE_THREAD | CLONE_VM, True)],
)
def test_fork_is_a_thread_exactly_when_clone_thread_is_set(flags: int, thread: bool) -> None:
    assert decode(fork_event(flags)).thread is thread


def test_fork_clone_flags_use_all_64_bits() -> None:
    flags = (1 << 40) | CLONE_THREAD  # clone3 flags beyond 32 bits exist (CLONE_INTO_CGROUP is 1<<33)
    assert decode(fork_event(flags)).clone_flags == flags


# --- exit --------------------------------------------------------------------------


def test_exit_decodes_status_task_code_and_group_dead() -> None:
    ev = decode(exit_event(0x0700, group_dead=1, task_code=0x0300))
    assert isinstance(ev, ExitEvent)
    assert ev.status == WaitStatus(0x0700)
    assert ev.task_exit_code == 0x0300
    assert ev.process_exit is True
    assert decode(exit_event(0, group_dead=0)).process_exit is False


def test_process_exit_lifetime_counts_from_the_process_start() -> None:
    ev = decode(exit_event(0, group_dead=1, task_start=3_000, ts=10_000, start=1_000))
    assert ev.lifetime_ns == 9_000


def test_thread_exit_lifetime_counts_from_the_thread_start() -> None:
    ev = decode(exit_event(0, group_dead=0, task_start=3_000, ts=10_000, start=1_000))
    assert ev.lifetime_ns == 7_000


def test_lifetime_is_never_negative() -> None:
    ev = decode(exit_event(0, group_dead=1, ts=500, start=1_000))
    assert ev.lifetime_ns == 0


# --- signal and reap ---------------------------------------------------------------


def test_signal_decodes_every_field() -> None:
    raw = signal_event(signo=10, code=-6, target=778, result=2, handler=0x401000, gsig=9, stage=2, group=0)
    ev = decode(raw)
    assert isinstance(ev, SignalEvent)
    assert (ev.signo, ev.code, ev.target_pid, ev.result, ev.handler) == (10, -6, 778, 2, 0x401000)
    assert (ev.group_exit_signo, ev.stage, ev.group, ev.target_comm) == (9, SIGNAL_DELIVER, False, b"sleep")
    assert decode(signal_event(group=1)).group is True


def test_signal_target_comm_stops_at_nul() -> None:
    assert decode(signal_event(tcomm=b"ab\0cd")).target_comm == b"ab"


def test_reap_decodes_pid_and_wait_status() -> None:
    ev = decode(reap_event(6000, 0x8B))
    assert isinstance(ev, ReapEvent)
    assert ev.reaped_pid == 6000
    assert ev.status.signal == "SIGSEGV"


# --- malformed input ---------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 55])
def test_buffer_shorter_than_the_header_raises(length: int) -> None:
    with pytest.raises(DecodeError):
        decode(reap_event(1, 0)[:length])


@pytest.mark.parametrize(
    "raw",
    [
        fork_event(0),
        exit_event(0, group_dead=1),
        signal_event(),
        reap_event(1, 0),
        exec_event(b"", b""),
    ],
    ids=["fork", "exit", "signal", "reap", "exec"],
)
def test_body_one_byte_short_raises(raw: bytes) -> None:
    decode(raw)  # whole: fine
    with pytest.raises(DecodeError):
        decode(raw[:-1])


@pytest.mark.parametrize("kind", [0, 8, 255, 0xFFFFFFFF, 0x100 | 1, 0x10000 | 2, 0x1000000 | 5])
def test_unknown_kind_raises(kind: int) -> None:
    with pytest.raises(DecodeError, match=f"unknown event kind {kind}"):
        decode(header(kind) + b"\0" * 512)  # long enough for any kind: only the kind is wrong


@given(
    st.sampled_from(
        [fork_event(0), exit_event(9, group_dead=1), signal_event(), reap_event(7, 0), exec_event(b"/a", b"a\0b\0")]
    ),
    st.binary(max_size=24),
    st.binary(max_size=24),
)
def test_decoding_in_place_equals_decoding_the_record_alone(raw: bytes, before: bytes, after: bytes) -> None:
    """The ring reader decodes records where they lie in the drained span."""
    assert wire.decode_at(before + raw + after, len(before), len(raw)) == decode(raw)


def test_decoding_in_place_never_reads_past_the_record() -> None:
    raw = exec_event(b"/bin/ls", b"ls\0", alen=4)  # claims one byte more than it has
    with pytest.raises(DecodeError):
        wire.decode_at(raw + b"x\0" * 8, 0, len(raw))


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_event_or_raise_decode_error(raw: bytes) -> None:
    try:
        ev = decode(raw)
    except DecodeError:
        return
    assert isinstance(ev, Event)


@given(st.integers(0, 7), st.binary(min_size=40, max_size=40), st.binary(max_size=120))
def test_any_body_behind_a_valid_header_decodes_or_raises_decode_error(kind: int, head: bytes, body: bytes) -> None:
    # Random bytes rarely form a known kind; this puts every kind in front of random bodies.
    raw = head[:16] + struct.pack("<I", kind) + head[20:] + b"\0" * 16 + body
    try:
        ev = decode(raw)
    except DecodeError:
        return
    assert isinstance(ev, Event)
    assert ev.kind == ("fork", "exec", "exit", "signal", "reap")[kind - 1]


# --- WaitStatus and names ----------------------------------------------------------


def test_wait_status_exit_7() -> None:
    st_ = WaitStatus(0x0700)
    assert (st_.exit_code, st_.signo, st_.signal, st_.core_dumped) == (7, 0, None, False)
    assert st_.shell_code() == 7
    assert st_.describe() == "exit 7"


def test_wait_status_killed_by_sigterm() -> None:
    st_ = WaitStatus(15)
    assert (st_.exit_code, st_.signal, st_.core_dumped) == (None, "SIGTERM", False)
    assert st_.describe() == "killed by SIGTERM"


def test_wait_status_sigsegv_with_core_dump() -> None:
    st_ = WaitStatus(0x8B)
    assert (st_.exit_code, st_.signo, st_.signal, st_.core_dumped) == (None, 11, "SIGSEGV", True)
    assert st_.describe() == "killed by SIGSEGV (core dumped)"


def test_wait_status_zero_is_a_clean_exit() -> None:
    assert (WaitStatus(0).exit_code, WaitStatus(0).shell_code(), WaitStatus(0).describe()) == (0, 0, "exit 0")


def test_wait_status_exit_255_uses_the_whole_byte() -> None:
    assert WaitStatus(0xFF00).exit_code == 255


@pytest.mark.parametrize(("signo", "code"), [(9, 137), (15, 143), (2, 130), (11, 139)])
def test_shell_code_of_a_signal_death_is_128_plus_the_signal(signo: int, code: int) -> None:
    assert WaitStatus(signo).shell_code() == code
    assert WaitStatus(signo | 0x80).shell_code() == code  # a core dump does not change it


def test_signal_name_of_realtime_signals_counts_from_sigrtmin() -> None:
    assert signal_name(int(signal.SIGRTMIN) + 3) == "SIGRTMIN+3"
    assert signal_name(int(signal.SIGRTMIN)) == "SIGRTMIN"
    assert signal_name(int(signal.SIGRTMAX)) == "SIGRTMAX"


def test_signal_name_prefers_the_standard_name_over_aliases() -> None:
    assert signal_name(6) == "SIGABRT"  # not SIGIOT
    assert signal_name(17) == "SIGCHLD"  # not SIGCLD
    assert signal_name(29) == "SIGIO"  # not SIGPOLL


@pytest.mark.parametrize("signo", [0, 200, 65, -1])
def test_signal_name_of_unknown_numbers_is_sig_and_number(signo: int) -> None:
    assert signal_name(signo) == f"SIG{signo}"


def test_errno_name_known_and_unknown() -> None:
    assert errno_name(2) == "ENOENT"
    assert errno_name(13) == "EACCES"
    assert errno_name(9999) == "E9999"


# --- SignalEvent.sender_pid --------------------------------------------------------


def sig(stage: int, signo: int, code: int) -> SignalEvent:
    return SignalEvent(1, 4242, 4240, 1, 0, b"kill", 0, 0, stage=stage, signo=signo, code=code, target_pid=99)


@pytest.mark.parametrize("code", [0, -1, -6], ids=["SI_USER", "SI_QUEUE", "SI_TKILL"])
def test_sender_is_the_generating_process_for_user_sent_signals(code: int) -> None:
    # The process (tgid 4240), not the thread (pid 4242): the thread is the event's pid.
    assert sig(SIGNAL_GENERATE, 15, code).sender_pid == 4240


def test_sender_is_the_generating_process_for_sigchld() -> None:
    assert sig(SIGNAL_GENERATE, int(signal.SIGCHLD), 1).sender_pid == 4240  # CLD_EXITED


@pytest.mark.parametrize(
    ("signo", "code"),
    [(11, 0x80), (14, -2), (11, 1), (10, -4)],
    ids=["SI_KERNEL", "SI_TIMER", "SEGV_MAPERR", "SI_ASYNCIO"],
)
def test_kernel_made_signals_have_no_sender(signo: int, code: int) -> None:
    assert sig(SIGNAL_GENERATE, signo, code).sender_pid is None


def test_delivery_never_names_a_sender() -> None:
    # At delivery the current task is the receiver, not whoever sent the signal.
    assert sig(SIGNAL_DELIVER, 15, 0).sender_pid is None
    assert sig(SIGNAL_DELIVER, int(signal.SIGCHLD), 1).sender_pid is None


def test_signal_event_signal_is_the_name() -> None:
    assert sig(SIGNAL_GENERATE, 9, 0).signal == "SIGKILL"


# --- the folded_signals map ---------------------------------------------------------------------


def fold_entry(*, generation=7, signo=17, stage=1, reason=wire.FOLD_PTRACE, count=20118, last=6_000_000_000):
    key = struct.pack(fmt("pt_fold_key"), 4240, 900, generation, signo, stage, reason)
    value = header(wire.KIND_SIGNAL, ts=5_000_000_000) + struct.pack(fmt("pt_fold"), count, last, b"strace")
    return key, value


def test_a_folded_entry_decodes_to_a_summary_stamped_when_it_was_read() -> None:
    key, value = fold_entry()
    ev = wire.decode_fold(key, value, read_ns=7_000_000_000)
    assert type(ev) is SignalSummaryEvent
    assert (ev.ts_ns, ev.first_ns, ev.last_ns) == (7_000_000_000, 5_000_000_000, 6_000_000_000)
    assert (ev.pid, ev.tgid, ev.comm, ev.uid, ev.cpu) == (4242, 4240, b"bash", 1000, 3)
    assert (ev.reason, ev.stage, ev.signo, ev.target_pid, ev.target_comm, ev.count) == (
        FOLD_PTRACE,
        SIGNAL_GENERATE,
        17,
        900,
        b"strace",
        20118,
    )
    assert ev.sender_pid == 4240


def test_a_folded_entry_names_its_generation() -> None:
    key, _ = fold_entry(generation=12345)
    assert wire.fold_generation(key) == 12345


def test_a_short_folded_entry_is_refused() -> None:
    key, value = fold_entry()
    with pytest.raises(DecodeError):
        wire.decode_fold(key, value[:-1], read_ns=1)
    with pytest.raises(DecodeError):
        wire.decode_fold(key[:-1], value, read_ns=1)


# --- exec context (where and as whom) ---------------------------------------------


def context_of(**kw) -> ProcessContext:
    ev = decode(exec_event(b"/bin/sh", b"sh\0", **kw))
    assert isinstance(ev, ExecEvent) and ev.context is not None
    return ev.context


def test_exec_without_the_context_flag_has_no_context() -> None:
    assert decode(exec_event(b"/bin/sh", b"sh\0")).context is None


def test_exec_cwd_components_come_deepest_first_and_are_joined_from_the_root() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT, cwd_area=b"c\0b b\0a\0")
    assert ctx.cwd == b"/a/b b/c"
    assert not ctx.cwd_truncated


def test_exec_cwd_at_the_root_is_slash() -> None:
    assert context_of(flags=wire.EXEC_CONTEXT).cwd == b"/"


def test_a_truncated_cwd_is_its_deepest_part_and_never_looks_absolute() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT | wire.EXEC_CWD_TRUNCATED, cwd_area=b"leaf\0mid\0")
    assert ctx.cwd == b"mid/leaf"
    assert ctx.cwd_truncated


def test_exec_credentials_before_and_after_and_privilege_gain() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT | wire.EXEC_CRED_BEFORE)
    assert ctx.creds == Credentials(*CRED)
    assert ctx.creds_before == Credentials(*CRED_BEFORE)
    assert ctx.privilege_gain  # euid 1000 -> 1001, and capabilities appeared
    assert context_of(flags=wire.EXEC_CONTEXT).creds_before is None


def test_exec_env_sits_between_argv_and_cwd() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT | wire.EXEC_ENV, env_area=b"A=1\0B=x=y\0ODD\0", cwd_area=b"tmp\0")
    assert ctx.env == {b"A": b"1", b"B": b"x=y", b"ODD": b""}
    assert ctx.cwd == b"/tmp"


def test_exec_without_env_asked_has_none() -> None:
    assert context_of(flags=wire.EXEC_CONTEXT).env is None


def test_exec_terminal_session_and_namespaces() -> None:
    ctx = context_of(
        flags=wire.EXEC_CONTEXT | wire.EXEC_LOGIN | wire.EXEC_EXE,
        tty_dev=(136 << 20) | 3,
        ids=(4000, 0xFFFFFFFF, 0xFFFFFFFF, 4026531836, 1, 4026531840, 0),
        exe=(123456, (8 << 20) | 1),
    )
    assert ctx.tty == "pts/3"
    assert ctx.sid == 4000
    assert (ctx.login_uid, ctx.login_session) == (None, None)  # unset: (uid_t)-1
    assert (ctx.pidns, ctx.ns_pid, ctx.mntns) == (4026531836, 1, 4026531840)
    assert (ctx.exe_ino, ctx.exe_dev) == (123456, os.makedev(8, 1))


def test_exec_without_a_terminal_or_executable() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT)
    assert ctx.tty is None
    assert (ctx.exe_dev, ctx.exe_ino) == (None, None)
    assert (ctx.login_uid, ctx.login_session) == (None, None)


def test_exec_memfd_and_deleted_flags() -> None:
    ctx = context_of(flags=wire.EXEC_CONTEXT | wire.EXEC_EXE | wire.EXEC_EXE_MEMFD | wire.EXEC_EXE_DELETED)
    assert ctx.exe_memfd and ctx.exe_deleted
    assert context_of(flags=wire.EXEC_CONTEXT | wire.EXEC_CWD_DELETED).cwd_deleted


def test_exec_shorter_than_its_env_and_cwd_raises() -> None:
    raw = exec_event(b"/x", b"x\0", flags=wire.EXEC_CONTEXT, cwd_area=b"tmp\0")
    with pytest.raises(DecodeError):
        decode(raw[:-1])


# --- cred and cgroup events --------------------------------------------------------


def cred_event(nr: int, before=CRED_BEFORE, after=CRED, groups_before=(), groups_after=(27, 100)) -> bytes:
    gb = list(groups_before) + [0] * (wire.GROUPS_MAX - len(groups_before))
    ga = list(groups_after) + [0] * (wire.GROUPS_MAX - len(groups_after))
    body = struct.pack(fmt("pt_cred_change"), nr, 0, *before, *after, len(groups_before), len(groups_after), *gb, *ga)
    return header(wire.KIND_CRED) + body


def test_cred_event_carries_both_sides_and_names_its_syscall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_CRED_SYSCALLS", {105: "setuid"})
    ev = decode(cred_event(105))
    assert isinstance(ev, CredEvent)
    assert ev.syscall == "setuid"
    assert (ev.before, ev.after) == (Credentials(*CRED_BEFORE), Credentials(*CRED))
    assert (ev.groups_before, ev.groups_after) == ((), (27, 100))
    assert ev.privilege_gain
    assert ev.cgroup_id == 777


def test_cred_event_of_an_unknown_syscall_number_says_the_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_CRED_SYSCALLS", {})
    assert decode(cred_event(9999)).syscall == "syscall 9999"


def test_cred_event_keeps_at_most_the_groups_carried_but_counts_all() -> None:
    many = tuple(range(1, 17))
    raw = header(wire.KIND_CRED) + struct.pack(fmt("pt_cred_change"), 116, 0, *CRED, *CRED, 0, 40, *([0] * 16), *many)
    ev = decode(raw)
    assert ev.groups_after == many and ev.groups_after_count == 40


@pytest.mark.parametrize(
    ("action", "word"), [(wire.CGROUP_MKDIR, "mkdir"), (wire.CGROUP_RMDIR, "rmdir"), (wire.CGROUP_RENAME, "rename")]
)
def test_cgroup_event_action_id_and_path(action: int, word: str) -> None:
    path = b"/system.slice/docker-" + b"a" * 64 + b".scope"
    raw = header(wire.KIND_CGROUP) + struct.pack(fmt("pt_cgroup"), 4242, action, len(path)) + path
    ev = decode(raw)
    assert isinstance(ev, CgroupEvent)
    assert (ev.action, ev.target_id, ev.path) == (word, 4242, path)
    with pytest.raises(DecodeError):
        decode(raw[:-1])


def test_cgroup_event_with_an_unknown_action_raises() -> None:
    raw = header(wire.KIND_CGROUP) + struct.pack(fmt("pt_cgroup"), 1, 9, 1) + b"/"
    with pytest.raises(DecodeError):
        decode(raw)


# --- what a process used -------------------------------------------------------------

USAGE = (
    300_000_000,  # utime: the ticks' share
    100_000_000,  # stime
    420_000_000,  # runtime: the scheduler's
    39_244, 3, 15, 2,  # faults, context switches
    150_000,  # signal->maxrss (KB): an image before this one
    40_000, 40_400,  # this image's hiwater and resident pages
    8192, 4096,  # I/O
)  # fmt: skip


def test_a_process_exit_carries_its_usage_as_rusage_would() -> None:
    ev = decode(exit_event(0, group_dead=1, has_usage=wire.USAGE | wire.USAGE_IO, usage=USAGE))
    assert isinstance(ev, ExitEvent) and ev.usage is not None
    u = ev.usage
    # runtime split in the ticks' ratio, 3:1 (cputime_adjust)
    assert (u.cpu_user_ns, u.cpu_sys_ns) == (315_000_000, 105_000_000)
    assert u.max_rss_kb == max(150_000, 40_400 * (mmap.PAGESIZE // 1024))
    assert (u.minflt, u.majflt, u.nvcsw, u.nivcsw) == (39_244, 3, 15, 2)
    assert (u.read_bytes, u.write_bytes) == (8192, 4096)


def test_without_io_accounting_the_io_fields_are_none_and_without_usage_there_is_none() -> None:
    ev = decode(exit_event(0, group_dead=1, has_usage=wire.USAGE, usage=USAGE))
    assert ev.usage is not None and (ev.usage.read_bytes, ev.usage.write_bytes) == (None, None)
    assert decode(exit_event(0, group_dead=0)).usage is None


@pytest.mark.parametrize(
    ("utime", "stime", "runtime", "expected"),
    [(0, 0, 5, (5, 0)), (0, 7, 5, (0, 5)), (7, 0, 5, (5, 0)), (1, 1, 9, (5, 4))],
)
def test_cputime_is_the_runtime_split_as_the_kernel_splits_it(utime, stime, runtime, expected) -> None:
    assert wire.adjusted_cputime(utime, stime, runtime) == expected


# --- what ended a process ----------------------------------------------------------


def test_an_exit_by_a_sent_signal_names_the_sender() -> None:
    ev = decode(exit_event(15, group_dead=1, death=wire.DEATH_SENT, killer=(4242, b"systemd")))
    assert (ev.killed_by_pid, ev.killed_by_comm, ev.oom_killed) == (4242, b"systemd", False)


def test_an_oom_kill_has_no_sender() -> None:
    ev = decode(exit_event(9, group_dead=1, death=wire.DEATH_OOM, killer=(0, b"stale")))
    assert ev.oom_killed and (ev.killed_by_pid, ev.killed_by_comm) == (None, None)
    plain = decode(exit_event(0, group_dead=1))
    assert not plain.oom_killed and plain.killed_by_pid is None


def test_a_kernel_reap_says_so() -> None:
    assert decode(reap_event(77, 0, autoreaped=1)).autoreaped
    assert not decode(reap_event(77, 0)).autoreaped
