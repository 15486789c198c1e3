"""Builders of synthetic events for the tests of the process table and what is
made from it (views, trace export): one place, so every test speaks of the
same shell, the same clock and the same event shapes."""

from __future__ import annotations

from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CGROUP_MKDIR,
    CLONE_PARENT,
    CLONE_THREAD,
    SI_USER,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    WaitStatus,
)

MS = 1_000_000
SHELL, SHELL_START, INIT = 100, 5 * MS, 1
OK = WaitStatus(0)


def exited(code: int) -> WaitStatus:
    return WaitStatus(code << 8)


def killed(signo: int) -> WaitStatus:
    return WaitStatus(signo)


def fork(
    ts: int,
    child: int,
    *,
    by: int = SHELL,
    start: int = SHELL_START,
    ppid: int = INIT,
    tid: int | None = None,
    flags: int = 0,
    comm: bytes = b"sh",
    cgroup_id: int = 0,
) -> ForkEvent:
    thread = bool(flags & CLONE_THREAD)
    return ForkEvent(
        ts,
        tid or by,
        by,
        ppid,
        0,
        comm,
        start,
        0,
        child_pid=child,
        child_tgid=by if thread else child,
        child_ppid=ppid if flags & (CLONE_PARENT | CLONE_THREAD) else by,
        clone_flags=flags,
        cgroup_id=cgroup_id,
    )


def execve(
    ts: int,
    pid: int,
    start: int,
    argv: list[bytes],
    *,
    ppid: int = SHELL,
    errno: int = 0,
    old_pid: int | None = None,
    filename: bytes | None = None,
    comm: bytes | None = None,
    context: ProcessContext | None = None,
    cgroup_id: int = 0,
) -> ExecEvent:
    name = filename if filename is not None else b"/usr/bin/" + argv[0]
    if comm is None:
        comm = argv[0][:15] if not errno else b"sh"
    return ExecEvent(
        ts, pid, pid, ppid, 0, comm, start, 0, name, argv,
        errno=errno, old_pid=old_pid or pid, context=context, cgroup_id=cgroup_id,
    )  # fmt: skip


def creds(euid: int, *, uid: int = 1000, caps: int = 0) -> Credentials:
    """Credentials of a user `uid` running as `euid` (all the effective ids), with capabilities `caps`."""
    return Credentials(uid, euid, euid, euid, uid, uid, uid, uid, caps)


def context(
    cwd: bytes = b"/home/u",
    *,
    now: Credentials | None = None,
    before: Credentials | None = None,
    cgroup: bytes | None = None,
) -> ProcessContext:
    """An exec's context: its directory, credentials after and before, cgroup."""
    return ProcessContext(cwd=cwd, creds=now, creds_before=before, cgroup=cgroup)


def cred(
    ts: int,
    pid: int,
    start: int,
    before: Credentials,
    after: Credentials,
    *,
    syscall: str = "setuid",
    ppid: int = SHELL,
    comm: bytes = b"sh",
) -> CredEvent:
    return CredEvent(ts, pid, pid, ppid, before.uid, comm, start, 0, syscall=syscall, before=before, after=after)


def cgroup_made(ts: int, cgroup_id: int, path: bytes) -> CgroupEvent:
    return CgroupEvent(ts, 1, 1, 0, 0, b"systemd", 1, 0, action=CGROUP_MKDIR, target_id=cgroup_id, path=path)


def exit_(
    ts: int,
    pid: int,
    start: int,
    status: WaitStatus = OK,
    *,
    ppid: int = SHELL,
    tgid: int | None = None,
    process: bool = True,
    comm: bytes = b"sh",
) -> ExitEvent:
    return ExitEvent(ts, pid, tgid or pid, ppid, 0, comm, start, 0, status, status.raw, process, start)


def reap(ts: int, child: int, status: WaitStatus = OK, *, by: int = SHELL, start: int = SHELL_START) -> ReapEvent:
    return ReapEvent(ts, by, by, INIT, 0, b"sh", start, 0, reaped_pid=child, status=status)


def generate(
    ts: int,
    target: int,
    signo: int,
    *,
    by: int = SHELL,
    start: int = SHELL_START,
    code: int = SI_USER,
    group: bool = True,
) -> SignalEvent:
    return SignalEvent(
        ts, by, by, INIT, 0, b"sh", start, 0,
        stage=SIGNAL_GENERATE, signo=signo, code=code, target_pid=target, group=group,
    )  # fmt: skip


def deliver(
    ts: int,
    pid: int,
    start: int,
    signo: int,
    *,
    handler: int = 0,
    ppid: int = SHELL,
    group_exit: int = 0,
    comm: bytes = b"sh",
) -> SignalEvent:
    return SignalEvent(
        ts, pid, pid, ppid, 0, comm, start, 0,
        stage=SIGNAL_DELIVER, signo=signo, target_pid=pid, handler=handler, group_exit_signo=group_exit,
    )  # fmt: skip
