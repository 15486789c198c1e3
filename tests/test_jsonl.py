"""tracer/formats/jsonl.py (one JSON object per event) and tracer/model/clock.py (monotonic to wall time)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proctrace.formats.jsonl import event_from_dict, event_json, lost_json
from proctrace.model.clock import Clock
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CGROUP_MKDIR,
    CGROUP_RENAME,
    CGROUP_RMDIR,
    CLONE_THREAD,
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
    ResourceUsage,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
)

from tests.oracle import event_dict

SEC = 1_000_000_000
# 1_700_000_000 s after the epoch is 2023-11-14T22:13:20Z.
WALL_2023 = 1_700_000_000 * SEC
CLOCK = Clock(realtime_minus_monotonic_ns=WALL_2023)

# The schema in README.md, "JSON schema".
COMMON = ("type", "ts_ns", "time", "pid", "tgid", "ppid", "comm", "uid", "start_ns", "cpu", "cgroup_id")
KIND_KEYS = {
    "fork": ("child_pid", "child_tgid", "child_ppid", "thread", "clone_flags"),
    "exec": (
        "filename",
        "argv",
        "argv_truncated",
        "filename_truncated",
        "argv_unreadable",
        "errno",
        "old_pid",
        "path_search",
    ),
    # A process exit as the kernel reports it, with what the process used.
    "exit": (
        "exit_code",
        "signal",
        "core_dumped",
        "status",
        "process_exit",
        "lifetime_ns",
        "oom_killed",
        "oom_memcg",
        "killed_by_pid",
        "killed_by_comm",
        "cpu_user_ns",
        "cpu_sys_ns",
        "max_rss_kb",
        "minflt",
        "majflt",
        "nvcsw",
        "nivcsw",
        "read_bytes",
        "write_bytes",
    ),
    "signal": ("signal", "signo", "stage", "target_pid", "target_comm", "sender_pid", "code", "result", "group"),
    "reap": ("reaped_pid", "exit_code", "signal", "core_dumped", "status", "autoreaped"),
    "cred": (
        "syscall",
        "before",
        "after",
        "groups_before",
        "groups_before_count",
        "groups_after",
        "groups_after_count",
        "privilege_gain",
    ),
    "cgroup": ("action", "target_id", "path"),
}
# The context fields of a successful exec (README, JSON schema), between old_pid and path_search.
CONTEXT_KEYS = (
    "cwd",
    "cwd_truncated",
    "cwd_deleted",
    "exe_dev",
    "exe_ino",
    "exe_memfd",
    "exe_deleted",
    "euid",
    "suid",
    "fsuid",
    "gid",
    "egid",
    "sgid",
    "fsgid",
    "cap_effective",
    "creds_before",
    "privilege_gain",
    "tty",
    "sid",
    "login_uid",
    "login_session",
    "pidns",
    "ns_pid",
    "mntns",
    "cgroup",
    "unit",
    "container_id",
)
USER = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)
ROOT = Credentials(1000, 0, 0, 0, 1000, 1000, 1000, 1000, (1 << 41) - 1)
CONTAINER = "a" * 64
CONTEXT = ProcessContext(
    cwd=b"/srv/app",
    exe_dev=0x803,
    exe_ino=1234,
    creds=ROOT,
    creds_before=USER,
    tty="pts/3",
    sid=300,
    login_uid=1000,
    login_session=4,
    pidns=4026531836,
    ns_pid=1,
    mntns=4026531841,
    cgroup=f"/system.slice/docker-{CONTAINER}.scope".encode(),
)
DELIVER_KEYS = (
    "signal",
    "signo",
    "stage",
    "target_pid",
    "target_comm",
    "sender_pid",
    "code",
    "handler",
    "group_exit_signal",
)


def base(**kw):
    fields = dict(
        ts_ns=2 * SEC + 250_000_000, pid=300, tgid=300, ppid=1, uid=1000, comm=b"sh", start_ns=SEC, cpu=0, cgroup_id=9
    )
    fields.update(kw)
    return fields


def sample_events():
    return {
        "fork": ForkEvent(**base(), child_pid=301, child_tgid=301, child_ppid=300, clone_flags=0),
        "exec": ExecEvent(**base(), filename=b"/bin/ls", argv=[b"ls", b"-l"], old_pid=300),
        "exit": ExitEvent(
            **base(),
            status=WaitStatus(0x0100),
            process_exit=True,
            task_start_ns=SEC,
            usage=ResourceUsage(290_000_000, 110_000_000, 161_504, 39_244, 1, 2, 2, 8192, None),
        ),
        "signal": SignalEvent(**base(), stage=SIGNAL_GENERATE, signo=15, code=0, target_pid=301),
        "reap": ReapEvent(**base(), reaped_pid=301, status=WaitStatus(0x0100)),
        "cred": CredEvent(
            **base(), syscall="setuid", before=ROOT, after=USER, groups_before=(0, 4), groups_before_count=2
        ),
        "cgroup": CgroupEvent(**base(), action=CGROUP_MKDIR, target_id=77, path=b"/system.slice/x.service"),
    }


@pytest.mark.parametrize("kind", list(KIND_KEYS))
def test_every_kind_has_exactly_the_documented_keys(kind: str) -> None:
    d = json.loads(event_json(sample_events()[kind], CLOCK))
    assert sorted(d) == sorted({*COMMON, *KIND_KEYS[kind]})
    assert d["type"] == kind


def test_delivered_signal_has_exactly_the_documented_keys() -> None:
    ev = SignalEvent(**base(), stage=SIGNAL_DELIVER, signo=9, target_pid=300, group_exit_signo=11)
    assert sorted(event_dict(ev, CLOCK)) == sorted({*COMMON, *DELIVER_KEYS})


@pytest.mark.parametrize("kind", list(KIND_KEYS))
def test_output_is_one_line_of_printable_ascii_json(kind: str) -> None:
    line = event_json(sample_events()[kind], CLOCK)
    assert "\n" not in line
    assert all(0x20 <= ord(c) < 0x7F for c in line)
    assert isinstance(json.loads(line), dict)


def test_common_values() -> None:
    d = json.loads(event_json(sample_events()["reap"], CLOCK))
    assert (d["ts_ns"], d["pid"], d["tgid"], d["ppid"], d["uid"], d["comm"]) == (
        2 * SEC + 250_000_000,
        300,
        300,
        1,
        1000,
        "sh",
    )
    assert d["time"] == "2023-11-14T22:13:22.250000Z"


def test_fork_values() -> None:
    d = event_dict(
        ForkEvent(**base(), child_pid=302, child_tgid=300, child_ppid=1, clone_flags=CLONE_THREAD | CLONE_VM), CLOCK
    )
    assert (d["child_pid"], d["child_tgid"], d["thread"]) == (302, 300, True)
    assert event_dict(sample_events()["fork"], CLOCK)["thread"] is False


def test_successful_exec_has_null_errno() -> None:
    d = json.loads(event_json(sample_events()["exec"], CLOCK))
    assert d["errno"] is None
    assert (d["filename"], d["argv"], d["argv_truncated"]) == ("/bin/ls", ["ls", "-l"], False)


def test_failed_exec_names_its_errno() -> None:
    ev = ExecEvent(**base(), filename=b"/nope", argv=[b"nope"], errno=2, old_pid=300)
    assert json.loads(event_json(ev, CLOCK))["errno"] == "ENOENT"


def test_exec_old_pid_is_null_unless_another_thread_called_exec() -> None:
    assert event_dict(ExecEvent(**base(), old_pid=300), CLOCK)["old_pid"] is None
    assert event_dict(ExecEvent(**base(), old_pid=305), CLOCK)["old_pid"] == 305


def test_exec_path_search_is_the_last_key_and_false_unless_set() -> None:
    success = json.loads(event_json(sample_events()["exec"], CLOCK))
    assert list(success)[-1] == "path_search"
    assert success["path_search"] is False
    miss = ExecEvent(**base(), filename=b"/usr/local/bin/as", argv=[b"as"], errno=2, old_pid=300, path_search=True)
    assert json.loads(event_json(miss, CLOCK))["path_search"] is True
    failure = ExecEvent(**base(), filename=b"/nope", argv=[b"nope"], errno=2, old_pid=300)
    assert json.loads(event_json(failure, CLOCK))["path_search"] is False


def test_exec_without_path_search_reads_back_as_not_a_path_miss() -> None:
    # A recording made before the field existed; tracer/session/replay.py decides it.
    d = event_dict(ExecEvent(**base(), filename=b"/nope", argv=[b"nope"], errno=2, old_pid=300), CLOCK)
    del d["path_search"]
    again = event_from_dict(d)
    assert type(again) is ExecEvent and again.errno == 2 and again.path_search is False


@pytest.mark.parametrize(("errno_name", "value"), [("ENOENT", 1), ("ENOENT", "true"), (None, True)])
def test_exec_path_search_must_be_a_boolean_and_only_on_a_failure(errno_name, value) -> None:
    d = event_dict(ExecEvent(**base(), filename=b"/x", argv=[b"x"], old_pid=300), CLOCK)
    d["errno"], d["path_search"] = errno_name, value
    with pytest.raises(ValueError, match="path_search"):
        event_from_dict(d)


def test_exit_with_code() -> None:
    d = json.loads(event_json(sample_events()["exit"], CLOCK))
    assert (d["exit_code"], d["signal"], d["core_dumped"], d["status"]) == (1, None, False, 0x0100)
    assert (d["process_exit"], d["lifetime_ns"]) == (True, SEC + 250_000_000)


def test_exit_killed_by_signal_with_core() -> None:
    ev = ExitEvent(**base(), status=WaitStatus(0x86), process_exit=False, task_start_ns=2 * SEC)
    d = json.loads(event_json(ev, CLOCK))
    assert (d["exit_code"], d["signal"], d["core_dumped"], d["status"]) == (None, "SIGABRT", True, 0x86)
    assert (d["process_exit"], d["lifetime_ns"]) == (False, 250_000_000)


def test_generated_signal_values() -> None:
    d = json.loads(event_json(sample_events()["signal"], CLOCK))
    assert (d["signal"], d["signo"], d["target_pid"], d["sender_pid"]) == ("SIGTERM", 15, 301, 300)
    assert (d["stage"], d["result"]) == ("generate", "delivered")


def test_sender_pid_is_the_sending_process_and_pid_the_sending_thread() -> None:
    ev = SignalEvent(**base(pid=305, tgid=300), stage=SIGNAL_GENERATE, signo=10, code=-6, target_pid=301)
    d = json.loads(event_json(ev, CLOCK))
    assert (d["pid"], d["sender_pid"]) == (305, 300)


def test_delivered_signal_has_no_sender_and_names_the_handler() -> None:
    ev = SignalEvent(**base(), stage=SIGNAL_DELIVER, signo=15, code=0, target_pid=300, handler=1)
    d = json.loads(event_json(ev, CLOCK))
    assert (d["stage"], d["sender_pid"], d["handler"]) == ("deliver", None, "ignore")


def test_reap_values() -> None:
    d = json.loads(event_json(ReapEvent(**base(), reaped_pid=301, status=WaitStatus(9)), CLOCK))
    assert (d["reaped_pid"], d["exit_code"], d["signal"]) == (301, None, "SIGKILL")


def test_control_characters_in_strings_are_escaped() -> None:
    ev = ExecEvent(**base(comm=b"a\x1bb"), filename=b"/tmp/x\ny", argv=[b"a\tb", b"\r", b"\x00\x7f", b"\x1b[31m"])
    line = event_json(ev, CLOCK)
    assert all(0x20 <= ord(c) < 0x7F for c in line)
    d = json.loads(line)
    assert (d["comm"], d["filename"], d["argv"]) == ("a\x1bb", "/tmp/x\ny", ["a\tb", "\r", "\x00\x7f", "\x1b[31m"])


def test_invalid_utf8_appears_as_surrogate_escapes() -> None:
    line = event_json(ExecEvent(**base(), filename=b"/tmp/\xff"), CLOCK)
    assert "\\udcff" in line
    assert json.loads(line)["filename"] == "/tmp/\udcff"


def test_valid_utf8_is_decoded_not_escaped_bytewise() -> None:
    d = json.loads(event_json(ExecEvent(**base(), argv=["caf\u00e9".encode()]), CLOCK))
    assert d["argv"] == ["caf\u00e9"]


def back(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


@given(st.binary(max_size=16), st.binary(max_size=64), st.lists(st.binary(max_size=32), max_size=6))
def test_any_bytes_in_comm_filename_and_argv_survive_the_json_round_trip(comm, filename, argv) -> None:
    line = event_json(ExecEvent(**base(comm=comm), filename=filename, argv=argv), CLOCK)
    assert all(0x20 <= ord(c) < 0x7F for c in line)
    d = json.loads(line)
    assert back(d["comm"]) == comm
    assert back(d["filename"]) == filename
    assert [back(a) for a in d["argv"]] == argv


@given(st.binary(max_size=16))
def test_any_bytes_in_a_signal_target_comm_survive(tcomm: bytes) -> None:
    ev = SignalEvent(**base(), stage=SIGNAL_GENERATE, signo=15, target_comm=tcomm)
    assert back(json.loads(event_json(ev, CLOCK))["target_comm"]) == tcomm


# --- reading events back (event_from_dict) ----------------------------------------

u32 = st.integers(0, 2**32 - 1)
s32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
common = st.fixed_dictionaries(
    {
        "ts_ns": st.integers(0, 2**63 - 1),
        "pid": u32,
        "tgid": u32,
        "ppid": u32,
        "uid": u32,
        "comm": st.binary(max_size=16),
        "start_ns": st.integers(0, 2**63 - 1),
        "cpu": st.integers(0, 4095),
        "cgroup_id": u64,
    }
)
creds = st.builds(Credentials, *([u32] * 8), st.integers(0, 2**64 - 1))
maybe = st.one_of(st.none(), u32)
contexts = st.builds(
    ProcessContext,
    cwd=st.one_of(st.none(), st.binary(max_size=40)),
    cwd_truncated=st.booleans(),
    cwd_deleted=st.booleans(),
    exe_dev=maybe,
    exe_ino=st.one_of(st.none(), u64),
    exe_memfd=st.booleans(),
    exe_deleted=st.booleans(),
    creds=st.one_of(st.none(), creds),
    creds_before=st.one_of(st.none(), creds),
    tty=st.one_of(st.none(), st.sampled_from(["pts/0", "tty1", "console"])),
    sid=maybe,
    login_uid=maybe,
    login_session=maybe,
    pidns=maybe,
    ns_pid=maybe,
    mntns=maybe,
    cgroup=st.one_of(
        st.none(),
        st.binary(max_size=30),
        st.just(b"/system.slice/docker-" + b"0123456789abcdef" * 4 + b".scope"),
        st.just(b"/user.slice/user-1000.slice/session-2.scope"),
    ),
    env=st.one_of(st.none(), st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=4)),
    env_truncated=st.booleans(),
)


def _with_own_uid(ev: ExecEvent) -> ExecEvent:
    """A context's credentials hold the event's uid (the record has it once)."""
    ctx = ev.context
    if ctx is not None and ctx.creds is not None:
        c = ctx.creds
        creds = Credentials(ev.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid, c.cap_effective)
        ev.context = ProcessContext(**{**{f: getattr(ctx, f) for f in ctx.__slots__}, "creds": creds})
    return ev


kernel_events = st.one_of(
    st.builds(
        lambda c, flen, argv, flags, err, old, path_search, ctx: _with_own_uid(
            ExecEvent(
                **c,
                filename=flen,
                argv=argv,
                argv_truncated=flags[0],
                filename_truncated=flags[1],
                argv_unreadable=flags[2],
                errno=err,
                old_pid=old,
                path_search=path_search and err != 0,  # only a failed exec is a PATH miss
                context=None if err else ctx,  # a failed exec has no new image to describe
            )
        ),
        common,
        st.binary(max_size=40),
        st.lists(st.binary(max_size=20), max_size=5),
        st.tuples(st.booleans(), st.booleans(), st.booleans()),
        st.integers(0, 4095),
        u32,
        st.booleans(),
        st.one_of(st.none(), contexts),
    ),
    st.builds(
        lambda c, syscall, before, after, gb, ga, extra: CredEvent(
            **c,
            syscall=syscall,
            before=before,
            after=after,
            groups_before=tuple(gb),
            groups_after=tuple(ga),
            groups_before_count=len(gb) + extra[0],
            groups_after_count=len(ga) + extra[1],
        ),
        common,
        st.sampled_from(["setuid", "setresuid", "setgroups", "capset", "setfsgid"]),
        st.one_of(st.none(), creds),
        st.one_of(st.none(), creds),
        st.lists(u32, max_size=16),
        st.lists(u32, max_size=16),
        st.tuples(st.integers(0, 100), st.integers(0, 100)),
    ),
    st.builds(
        lambda c, action, target, path: CgroupEvent(**c, action=action, target_id=target, path=path),
        common,
        st.sampled_from([CGROUP_MKDIR, CGROUP_RMDIR, CGROUP_RENAME]),
        u64,
        st.binary(max_size=40),
    ),
    st.builds(
        lambda c, a, b, p, f: ForkEvent(**c, child_pid=a, child_tgid=b, child_ppid=p, clone_flags=f),
        common,
        u32,
        u32,
        u32,
        u64,
    ),
    st.builds(
        lambda c, raw, code, pe, tstart, usage, oom, memcg, killer: ExitEvent(
            **c,
            status=WaitStatus(raw),
            task_exit_code=code,
            process_exit=pe,
            task_start_ns=tstart,
            usage=usage if pe else None,
            oom_killed=oom and pe,
            oom_memcg=memcg if oom and pe else None,
            killed_by_pid=killer[0] if pe and killer and raw & 0x7F else None,
            killed_by_comm=killer[1] if pe and killer and raw & 0x7F else None,
        ),
        common,
        u32,
        u32,
        st.booleans(),
        st.integers(0, 2**63 - 1),
        st.none() | st.builds(ResourceUsage, u64, u64, u64, u64, u64, u64, u64, st.none() | u64, st.none() | u64),
        st.booleans(),
        st.none() | st.binary(max_size=40),
        st.none() | st.tuples(u32, st.binary(max_size=16)),
    ),
    st.builds(
        lambda c, stage, signo, code, tgt, tcomm, res, grp, handler, gsig: SignalEvent(
            **c,
            stage=stage,
            signo=signo,
            code=code,
            target_pid=tgt,
            target_comm=tcomm,
            result=res,
            group=grp,
            handler=handler,
            group_exit_signo=gsig,
        ),
        common,
        st.sampled_from([SIGNAL_GENERATE, SIGNAL_DELIVER]),
        s32,
        s32,
        u32,
        st.binary(max_size=16),
        st.integers(0, 4),
        st.booleans(),
        u64,
        st.integers(0, 127),
    ),
    st.builds(lambda c, p, raw: ReapEvent(**c, reaped_pid=p, status=WaitStatus(raw)), common, u32, u32),
    st.builds(
        lambda c, reason, stage, signo, tgt, tcomm, count, first, last: SignalSummaryEvent(
            **c,
            reason=reason,
            stage=stage,
            signo=signo,
            target_pid=tgt,
            target_comm=tcomm,
            count=count,
            first_ns=first,
            last_ns=last,
        ),
        common,
        st.sampled_from([FOLD_PTRACE, FOLD_RATE]),
        st.sampled_from([SIGNAL_GENERATE, SIGNAL_DELIVER]),
        st.integers(1, 64),
        u32,
        st.binary(max_size=16),
        u64,
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**63 - 1),
    ),
)


@given(kernel_events)
def test_event_json_is_byte_for_byte_the_encoding_of_event_dict(ev) -> None:
    # event_json is a faster writer of the same text: the two must never drift.
    canonical = json.dumps(event_dict(ev, CLOCK), ensure_ascii=True, separators=(",", ":"))
    assert event_json(ev, CLOCK) == canonical


@given(kernel_events)
def test_json_read_back_gives_the_same_json(ev) -> None:
    line = event_json(ev, CLOCK)
    again = event_from_dict(json.loads(line))
    assert type(again) is type(ev)
    assert event_json(again, CLOCK) == line


SUMMARY_KEYS = (
    "reason",
    "signal",
    "signo",
    "stage",
    "target_pid",
    "target_comm",
    "sender_pid",
    "count",
    "first_ns",
    "last_ns",
)


def test_a_signal_summary_has_exactly_the_documented_keys_and_its_own_type() -> None:
    ev = SignalSummaryEvent(
        **base(), reason=FOLD_PTRACE, signo=17, target_pid=40, target_comm=b"strace", count=20118, first_ns=SEC
    )
    d = json.loads(event_json(ev, CLOCK))
    assert tuple(d) == (*COMMON, *SUMMARY_KEYS)
    assert (d["type"], d["reason"], d["signal"], d["count"], d["sender_pid"]) == (
        "signal_summary",
        "ptrace_stop",
        "SIGCHLD",
        20118,
        300,
    )


def test_a_summary_counted_at_delivery_has_no_sender() -> None:
    ev = SignalSummaryEvent(**base(), reason=FOLD_RATE, stage=SIGNAL_DELIVER, signo=10, target_pid=300, count=5)
    d = json.loads(event_json(ev, CLOCK))
    assert (d["reason"], d["stage"], d["sender_pid"]) == ("rate_limit", "deliver", None)


def test_a_lost_record_names_its_class() -> None:
    d = json.loads(lost_json(5 * SEC, 3, 7, CLOCK, "signal"))
    time = CLOCK.iso(5 * SEC)
    assert d == {"type": "lost", "ts_ns": 5 * SEC, "time": time, "class": "signal", "count": 3, "total": 7}


def test_read_back_keeps_the_bytes_of_strings() -> None:
    ev = ExecEvent(**base(comm=b"\xffsh"), filename=b"/tmp/\x80", argv=[b"a\nb", b"\xc3"])
    again = event_from_dict(json.loads(event_json(ev, CLOCK)))
    assert (again.comm, again.filename, again.argv) == (b"\xffsh", b"/tmp/\x80", [b"a\nb", b"\xc3"])


def test_unknown_signal_result_survives_the_read_back() -> None:
    # event_json writes a result it has no name for as its number ("7"), so a newer
    # kernel's value is not lost; reading it back must not turn it into "delivered".
    ev = SignalEvent(**base(), stage=SIGNAL_GENERATE, signo=15, target_pid=301, result=7)
    line = event_json(ev, CLOCK)
    assert json.loads(line)["result"] == "7"
    assert json.loads(event_json(event_from_dict(json.loads(line)), CLOCK))["result"] == "7"


def test_reading_back_an_unknown_type_raises() -> None:
    d = event_dict(sample_events()["reap"], CLOCK)
    d["type"] = "teleport"
    with pytest.raises(ValueError, match="teleport"):
        event_from_dict(d)


# --- cgroup ids, contexts, cred and cgroup events --------------------------------


@pytest.mark.parametrize("kind", list(KIND_KEYS))
def test_every_event_carries_its_cgroup_id_and_an_old_line_without_one_reads_as_0(kind: str) -> None:
    d = json.loads(event_json(sample_events()[kind], CLOCK))
    assert d["cgroup_id"] == 9
    del d["cgroup_id"]
    assert event_from_dict(d).cgroup_id == 0


@pytest.mark.parametrize("value", [-1, 1 << 64, "9", 9.0, True, None])
def test_a_cgroup_id_that_is_not_a_u64_is_refused(value) -> None:
    d = event_dict(sample_events()["fork"], CLOCK)
    d["cgroup_id"] = value
    with pytest.raises(ValueError, match="cgroup_id"):
        event_from_dict(d)


def exec_with_context(**kw) -> ExecEvent:
    return ExecEvent(**base(), filename=b"/usr/bin/sudo", argv=[b"sudo", b"id"], old_pid=300, context=CONTEXT, **kw)


def test_a_successful_exec_carries_the_context_fields_between_old_pid_and_path_search() -> None:
    d = json.loads(event_json(exec_with_context(), CLOCK))
    keys = list(d)
    start = keys.index("old_pid") + 1
    assert tuple(keys[start:-1]) == CONTEXT_KEYS
    assert keys[-1] == "path_search"
    assert (d["cwd"], d["euid"], d["cap_effective"], d["privilege_gain"]) == ("/srv/app", 0, (1 << 41) - 1, True)
    assert d["creds_before"]["euid"] == 1000
    assert (d["unit"], d["container_id"], d["tty"]) == (f"docker-{CONTAINER}.scope", CONTAINER, "pts/3")
    assert "env" not in d  # only with --env


def test_an_exec_context_reads_back_whole_and_an_old_exec_without_one_as_none() -> None:
    ev = exec_with_context()
    d = json.loads(event_json(ev, CLOCK))
    assert event_from_dict(d).context == CONTEXT
    old = event_dict(ExecEvent(**base(), filename=b"/bin/ls", argv=[b"ls"], old_pid=300), CLOCK)
    del old["cgroup_id"]
    assert event_from_dict(old).context is None


def test_the_environment_is_written_only_with_one_and_reads_back_as_bytes() -> None:
    ctx = ProcessContext(cwd=b"/", env={b"PATH": b"/bin", b"X\xff": b"a\nb"}, env_truncated=True)
    ev = ExecEvent(**base(), filename=b"/bin/env", argv=[b"env"], old_pid=300, context=ctx)
    d = json.loads(event_json(ev, CLOCK))
    assert (d["env"], d["env_truncated"]) == ({"PATH": "/bin", "X\udcff": "a\nb"}, True)
    assert event_from_dict(d).context.env == {b"PATH": b"/bin", b"X\xff": b"a\nb"}


def test_a_failed_exec_with_a_context_is_refused() -> None:
    d = json.loads(event_json(exec_with_context(), CLOCK))
    d["errno"] = "ENOENT"
    with pytest.raises(ValueError, match="context"):
        event_from_dict(d)


@pytest.mark.parametrize(("field", "value"), [("euid", "0"), ("cwd_truncated", 1), ("pidns", 1.5), ("tty", 3)])
def test_context_fields_of_the_wrong_type_are_refused(field: str, value) -> None:
    d = json.loads(event_json(exec_with_context(), CLOCK))
    d[field] = value
    with pytest.raises(ValueError):
        event_from_dict(d)


def test_a_cred_event_says_before_and_after_and_whether_privilege_was_gained() -> None:
    d = json.loads(event_json(sample_events()["cred"], CLOCK))
    assert (d["type"], d["syscall"], d["before"]["euid"], d["after"]["euid"]) == ("cred", "setuid", 0, 1000)
    assert (d["groups_before"], d["groups_before_count"], d["groups_after"]) == ([0, 4], 2, [])
    assert d["privilege_gain"] is False  # dropping root is no gain
    gain = CredEvent(**base(), syscall="setresuid", before=USER, after=ROOT)
    assert json.loads(event_json(gain, CLOCK))["privilege_gain"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("groups_before", [0, "4"]), ("groups_before_count", 1), ("before", {"uid": 0}), ("syscall", 5)],
)
def test_a_cred_event_of_the_wrong_shape_is_refused(field: str, value) -> None:
    d = json.loads(event_json(sample_events()["cred"], CLOCK))
    d[field] = value
    with pytest.raises((ValueError, TypeError)):
        event_from_dict(d)


def test_a_cgroup_event_names_its_action_target_and_path() -> None:
    d = json.loads(event_json(sample_events()["cgroup"], CLOCK))
    assert (d["type"], d["action"], d["target_id"], d["path"]) == ("cgroup", "mkdir", 77, "/system.slice/x.service")
    d["action"] = "chmod"
    with pytest.raises(ValueError, match="action"):
        event_from_dict(d)


# --- Clock ---------------------------------------------------------------------------


def test_iso_with_a_fixed_offset() -> None:
    assert Clock(WALL_2023).iso(123_456_789) == "2023-11-14T22:13:20.123456Z"


def test_iso_truncates_to_microseconds_without_rounding_into_the_next_second() -> None:
    assert Clock(WALL_2023).iso(999_999_999) == "2023-11-14T22:13:20.999999Z"
    assert Clock(WALL_2023).iso(999) == "2023-11-14T22:13:20.000000Z"


def test_iso_adds_the_offset_to_the_monotonic_time() -> None:
    clock = Clock(WALL_2023 - 100 * SEC)
    assert clock.iso(100 * SEC) == "2023-11-14T22:13:20.000000Z"
    assert clock.wall_ns(100 * SEC + 7) == WALL_2023 + 7


def test_iso_is_right_when_the_second_changes_between_calls() -> None:
    # 946684799 s is 1999-12-31T23:59:59Z: crossing it changes every field of the prefix.
    clock = Clock(946_684_799 * SEC)
    assert clock.iso(500_000_000) == "1999-12-31T23:59:59.500000Z"
    assert clock.iso(900_000_000) == "1999-12-31T23:59:59.900000Z"  # same second, cached prefix
    assert clock.iso(SEC) == "2000-01-01T00:00:00.000000Z"
    assert clock.iso(SEC + 1_000) == "2000-01-01T00:00:00.000001Z"
    assert clock.iso(0) == "1999-12-31T23:59:59.000000Z"  # back to an earlier second
    assert clock.iso(3601 * SEC) == "2000-01-01T01:00:00.000000Z"


@given(st.lists(st.integers(0, 10**6 * SEC), min_size=1, max_size=20))
def test_iso_with_cache_equals_a_fresh_clock_for_any_sequence(stamps: list[int]) -> None:
    cached = Clock(WALL_2023)
    for ts in stamps:
        assert cached.iso(ts) == Clock(WALL_2023).iso(ts)


def test_default_offset_maps_monotonic_now_to_wall_now() -> None:
    clock = Clock()
    assert abs(clock.wall_ns(time.monotonic_ns()) - time.time_ns()) < SEC
