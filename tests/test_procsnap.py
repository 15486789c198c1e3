"""The /proc snapshot's parsers on canned file contents, and its reader on a
directory tree standing in for /proc (no root, no live kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.procsnap import (
    ProcInfo,
    parse_audit_id,
    parse_cgroup,
    parse_link,
    parse_stat,
    parse_stat_terminal,
    parse_status_context,
    read_context,
    snapshot,
)

# A shell on pts/3 (tty_nr 34819 = major 136, minor 3), session leader 4100;
# its comm holds a space and a ')', as a process may choose.
STAT = (
    b"4242 (my ) prog) S 4100 4242 4100 34819 4242 4194304 99 0 0 0 0 0 0 0 20 0 3 0 "
    b"773244 3133440 362 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
)
STATUS = b"""Name:\tprog
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
NSpid:\t4242\t17
Uid:\t1000\t0\t0\t1000
Gid:\t100\t100\t100\t100
Groups:\t100 27
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t0000000000003000
"""
HYBRID_CGROUP = b"""9:name=systemd:/user.slice/user-1000.slice/session-2.scope
4:memory:/user.slice
0::/user.slice/user-1000.slice/session-2.scope
"""


def test_stat_fields_after_a_comm_with_parentheses_and_spaces() -> None:
    assert parse_stat(STAT, 100) == (b"my ) prog", 4100, 3, 7_732_440_000_000)
    assert parse_stat_terminal(STAT) == (4100, 34819)


def test_status_gives_all_four_ids_of_each_kind_the_effective_capabilities_and_the_innermost_pid() -> None:
    creds, ns_pid = parse_status_context(STATUS)
    assert creds == Credentials(1000, 0, 0, 1000, 100, 100, 100, 100, cap_effective=0x3000)
    assert ns_pid == 17  # the last NSpid value: as the process sees itself


def test_status_without_a_complete_set_of_credentials_gives_none_not_a_guess() -> None:
    no_cap = b"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNSpid:\t9\n"
    assert parse_status_context(no_cap) == (None, 9)
    cut_short = b"Uid:\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0\n"
    assert parse_status_context(cut_short) == (None, None)
    garbled = b"Uid:\t0\tx\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\tzz\nNSpid:\n"
    assert parse_status_context(garbled) == (None, None)


def test_the_unified_line_of_proc_pid_cgroup() -> None:
    assert parse_cgroup(HYBRID_CGROUP) == b"/user.slice/user-1000.slice/session-2.scope"
    assert parse_cgroup(b"0::/\n") == b"/"
    assert parse_cgroup(b"4:memory:/x\n1:cpu:/\n") is None  # a v1-only host


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/home/alice", (b"/home/alice", False)),
        (b"/tmp/gone (deleted)", (b"/tmp/gone", True)),
        (b"/memfd:payload (deleted)", (b"/memfd:payload", True)),
        (b"/srv/a (deleted) dir", (b"/srv/a (deleted) dir", False)),  # only a suffix says so
    ],
)
def test_a_link_target_says_whether_its_file_was_deleted(target: bytes, expected: tuple[bytes, bool]) -> None:
    assert parse_link(target) == expected


def test_an_unset_audit_id_is_none() -> None:
    assert parse_audit_id(b"4294967295") is None
    assert parse_audit_id(b"1000\n") == 1000
    with pytest.raises(ValueError):
        parse_audit_id(b"")


# --- a directory standing in for /proc ------------------------------------------------------


def fake_process(
    proc: Path, pid: int, *, cwd: Path | None, exe: Path | str | None, with_ns: bool = True, cgroup: bytes | None = None
) -> Path:
    base = proc / str(pid)
    base.mkdir(parents=True)
    (base / "stat").write_bytes(STAT.replace(b"4242 (", f"{pid} (".encode(), 1))
    (base / "status").write_bytes(STATUS)
    (base / "cmdline").write_bytes(b"prog\0--flag\0")
    (base / "loginuid").write_bytes(b"1000")
    (base / "sessionid").write_bytes(b"4294967295")
    if cgroup is not None:
        (base / "cgroup").write_bytes(cgroup)
    if cwd is not None:
        (base / "cwd").symlink_to(cwd)
    if exe is not None:
        (base / "exe").symlink_to(exe)
    if with_ns:
        (base / "ns").mkdir()
        (base / "ns" / "pid").write_bytes(b"")
        (base / "ns" / "mnt").write_bytes(b"")
    return base


def test_a_full_context_from_the_files_of_a_process(tmp_path: Path) -> None:
    proc, work, program = tmp_path / "proc", tmp_path / "work", tmp_path / "prog"
    work.mkdir()
    program.write_bytes(b"\x7fELF")
    base = fake_process(proc, 4242, cwd=work, exe=program, cgroup=HYBRID_CGROUP)
    ctx = read_context(str(base), STAT, STATUS)
    st = os.stat(program)
    assert ctx == ProcessContext(
        cwd=os.fsencode(work),
        exe_dev=st.st_dev,
        exe_ino=st.st_ino,
        creds=Credentials(1000, 0, 0, 1000, 100, 100, 100, 100, cap_effective=0x3000),
        tty="pts/3",
        sid=4100,
        login_uid=1000,
        login_session=None,
        pidns=os.stat(base / "ns" / "pid").st_ino,
        ns_pid=17,
        mntns=os.stat(base / "ns" / "mnt").st_ino,
        cgroup=b"/user.slice/user-1000.slice/session-2.scope",
    )
    assert ctx.unit == b"session-2.scope"


def test_a_removed_directory_and_a_memfd_executable_are_flagged(tmp_path: Path) -> None:
    """readlink shows "(deleted)" for both; the exe link of a memfd names /memfd:.
    Here the link targets are literally those names, as /proc would show them;
    a plain symlink leads nowhere, so the exe's identity stays unknown."""
    proc = tmp_path / "proc"
    base = fake_process(proc, 7, cwd=Path("/gone/dir (deleted)"), exe="/memfd:stage2 (deleted)")
    ctx = read_context(str(base), STAT, STATUS)
    assert (ctx.cwd, ctx.cwd_deleted) == (b"/gone/dir", True)
    assert (ctx.exe_memfd, ctx.exe_deleted) == (True, True)
    assert (ctx.exe_dev, ctx.exe_ino) == (None, None)


def test_a_memfd_executable_that_stat_can_follow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc's exe link is magic: stat follows it to the memfd even though its
    name is not a path. A real file stands in, and readlink says /memfd:."""
    proc, program = tmp_path / "proc", tmp_path / "memfd-backing"
    program.write_bytes(b"")
    base = fake_process(proc, 8, cwd=tmp_path, exe=program)
    real_readlink = os.readlink

    def readlink(path: str) -> str:
        return "/memfd:stage2 (deleted)" if path.endswith("/exe") else real_readlink(path)

    monkeypatch.setattr(os, "readlink", readlink)
    ctx = read_context(str(base), STAT, STATUS)
    assert (ctx.exe_memfd, ctx.exe_deleted, ctx.exe_ino) == (True, True, os.stat(program).st_ino)


def test_a_process_whose_files_are_gone_gets_a_partial_context_not_an_exception(tmp_path: Path) -> None:
    """A kernel thread has no exe; a process that ended mid-read has lost the
    files not yet read. What was read stays; the rest is None."""
    base = fake_process(tmp_path / "proc", 9, cwd=None, exe=None, with_ns=False)
    (base / "loginuid").unlink()
    ctx = read_context(str(base), STAT, STATUS)
    assert ctx.creds is not None and ctx.tty == "pts/3"
    assert (ctx.cwd, ctx.exe_ino, ctx.pidns, ctx.mntns, ctx.login_uid, ctx.cgroup) == (None,) * 6
    garbled = read_context(str(base), b"9 (x) S", b"")
    assert (garbled.sid, garbled.tty, garbled.creds) == (None, None, None)


def test_the_snapshot_reads_each_process_and_skips_one_that_vanished(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 12, cwd=tmp_path, exe=None, cgroup=b"0::/system.slice/cron.service\n")
    gone = fake_process(proc, 13, cwd=tmp_path, exe=None)
    (gone / "status").unlink()  # ended between listing /proc and reading it
    (proc / "self").mkdir()  # not a pid
    (procs,) = snapshot(proc)
    assert (procs.pid, procs.ppid, procs.comm, procs.argv) == (12, 4100, b"my ) prog", [b"prog", b"--flag"])
    assert procs.context is not None and procs.context.cgroup == b"/system.slice/cron.service"


def test_a_snapshot_entry_carries_its_context_flat_and_reads_back() -> None:
    ctx = ProcessContext(
        cwd=b"/srv/\xffbin",
        exe_dev=64768,
        exe_ino=1234,
        creds=Credentials(0, 0, 0, 0, 0, 0, 0, 0, cap_effective=0x1FF),
        tty="tty1",
        sid=1,
        pidns=4026531836,
        ns_pid=1,
        mntns=4026531832,
        cgroup=b"/system.slice/docker-" + b"ab" * 32 + b".scope",
    )
    info = ProcInfo(1, 0, 0, b"init", [b"/sbin/init"], 10, 1, ctx)
    d = info.to_dict()
    assert d["cwd"] == "/srv/\udcffbin" and d["cgroup"].startswith("/system.slice/docker-")
    assert d["container_id"] == "ab" * 32 and d["euid"] == 0 and "context" not in d
    assert ProcInfo.from_dict(d) == info


def test_a_snapshot_from_before_contexts_still_reads() -> None:
    old = {"pid": 5, "ppid": 1, "uid": 0, "comm": "sh", "argv": ["sh"], "start_ns": 0, "threads": 1}
    assert ProcInfo.from_dict(old) == ProcInfo(5, 1, 0, b"sh", [b"sh"], 0, 1, None)
    assert ProcInfo.from_dict(old).to_dict() == old
