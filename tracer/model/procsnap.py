"""The processes that existed before tracing started, read from /proc.

They give every traced process its ancestors: without them a tree would start
at whatever happened to fork first after the tracer attached. Each also gets
the context an exec event would have carried (tracer/model/context.py), so a
process that never execs while traced still says where and as whom it runs.
Parsers take the file contents, so they are tested on canned text without a
live /proc.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proctrace.model.context import UNSET_ID, Credentials, ProcessContext, decode_tty_nr, tty_name
from proctrace.model.events import as_bytes, as_text

# What readlink(2) of /proc/PID/cwd or exe ends with when the file is gone.
_DELETED = b" (deleted)"
# How readlink(2) of /proc/PID/exe names a memfd_create() file: "/memfd:NAME (deleted)".
_MEMFD = b"/memfd:"


@dataclass(slots=True)
class ProcInfo:
    pid: int  # the process id (tgid)
    ppid: int
    uid: int
    comm: bytes
    argv: list[bytes] = field(default_factory=list)
    # Start time in ns since boot, from /proc/<pid>/stat in clock ticks (10 ms
    # resolution, and boot-time rather than monotonic based): approximate.
    start_ns: int = 0
    threads: int = 1
    # What /proc said of its directory, executable, credentials, terminal,
    # namespaces and cgroup; None in snapshots from before contexts were read.
    context: ProcessContext | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "comm": as_text(self.comm),
            "argv": [as_text(a) for a in self.argv],
            "start_ns": self.start_ns,
            "threads": self.threads,
        }
        if self.context is not None:
            # Flat, beside the process's own fields, as an exec event carries it.
            d.update(self.context.to_dict())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcInfo:
        return cls(
            pid=int(d["pid"]),
            ppid=int(d["ppid"]),
            uid=int(d["uid"]),
            comm=as_bytes(d["comm"]),
            argv=[as_bytes(a) for a in d["argv"]],
            start_ns=int(d["start_ns"]),
            threads=int(d["threads"]),
            context=ProcessContext.from_dict(d),
        )


def parse_stat(raw: bytes, ticks_per_s: int) -> tuple[bytes, int, int, int]:
    """(comm, ppid, threads, start_ns) from /proc/<pid>/stat.

    comm sits in parentheses and may itself hold ')' and spaces, so the fields
    after it are found from the last ')'."""
    comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")]
    rest = _stat_fields(raw)
    # rest[0] is field 3 (state): ppid is field 4, num_threads 20, starttime 22.
    ppid = int(rest[1])
    threads = int(rest[17])
    start_ns = int(rest[19]) * 1_000_000_000 // ticks_per_s
    return comm, ppid, threads, start_ns


def _stat_fields(raw: bytes) -> list[bytes]:
    """The fields of /proc/<pid>/stat after comm, from field 3 (state) on."""
    return raw[raw.rindex(b")") + 2 :].split()


def parse_stat_terminal(raw: bytes) -> tuple[int, int]:
    """(sid, tty_nr) from /proc/<pid>/stat: fields 6 and 7."""
    rest = _stat_fields(raw)
    return int(rest[3]), int(rest[4])


def parse_uid(status: bytes) -> int:
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    raise ValueError("no Uid line in /proc/<pid>/status")


def parse_status_context(status: bytes) -> tuple[Credentials | None, int | None]:
    """(credentials, ns_pid) from /proc/<pid>/status: Uid: and Gid: (real,
    effective, saved, filesystem), CapEff: (hex), and the last NSpid: value,
    the pid in the innermost namespace. Credentials are None unless all three
    lines were there and well formed."""
    uids: list[int] | None = None
    gids: list[int] | None = None
    cap: int | None = None
    ns_pid: int | None = None
    for line in status.splitlines():
        head, _, value = line.partition(b":")
        try:
            if head == b"Uid":
                uids = [int(v) for v in value.split()]
            elif head == b"Gid":
                gids = [int(v) for v in value.split()]
            elif head == b"CapEff":
                cap = int(value.strip(), 16)
            elif head == b"NSpid":
                ns_pid = int(value.split()[-1])
        except (ValueError, IndexError):
            continue  # a line cut short: that value stays unknown
    creds = None
    if uids is not None and gids is not None and cap is not None and len(uids) == 4 and len(gids) == 4:
        creds = Credentials(*uids, *gids, cap_effective=cap)
    return creds, ns_pid


def parse_cgroup(raw: bytes) -> bytes | None:
    """The cgroup v2 path from /proc/<pid>/cgroup: its "0::" line (hybrid hosts
    list the v1 hierarchies too); None when there is no unified hierarchy."""
    for line in raw.splitlines():
        if line.startswith(b"0::"):
            return line[3:]
    return None


def parse_link(target: bytes) -> tuple[bytes, bool]:
    """(path, deleted) of a /proc/<pid>/cwd or exe link: the kernel appends
    " (deleted)" to a file or directory that no longer has its name."""
    if target.endswith(_DELETED):
        return target[: -len(_DELETED)], True
    return target, False


def parse_audit_id(raw: bytes) -> int | None:
    """/proc/<pid>/loginuid or sessionid; None while unset ((uid_t)-1)."""
    value = int(raw.strip())
    return None if value == UNSET_ID else value


def read_context(base: str, stat: bytes, status: bytes) -> ProcessContext:
    """The context of the process at `base` (/proc/PID), from its stat and
    status already read and the files beside them. A file that cannot be read
    (the process ended meanwhile, or a kernel thread has no executable) leaves
    its fields unknown: a partial context, never an exception."""
    cwd = exe_dev = exe_ino = sid = tty = login_uid = login_session = pidns = mntns = cgroup = None
    cwd_deleted = exe_memfd = exe_deleted = False
    with contextlib.suppress(OSError):
        cwd, cwd_deleted = parse_link(os.fsencode(os.readlink(base + "/cwd")))
    with contextlib.suppress(OSError):
        target = os.fsencode(os.readlink(base + "/exe"))
        exe_memfd = target.startswith(_MEMFD)
        exe_deleted = parse_link(target)[1]
    with contextlib.suppress(OSError):
        # /proc's exe link leads to the file the process runs even when it has
        # no name left (deleted, or a memfd): its identity is still there.
        st = os.stat(base + "/exe")
        exe_dev, exe_ino = st.st_dev, st.st_ino
    try:
        sid, tty_nr = parse_stat_terminal(stat)
        device = decode_tty_nr(tty_nr)
        tty = None if device is None else tty_name(*device)
    except (ValueError, IndexError):
        pass
    creds, ns_pid = parse_status_context(status)
    try:
        login_uid = parse_audit_id(_read(base + "/loginuid"))
        login_session = parse_audit_id(_read(base + "/sessionid"))
    except (OSError, ValueError):
        pass
    try:
        pidns = os.stat(base + "/ns/pid").st_ino
        mntns = os.stat(base + "/ns/mnt").st_ino
    except OSError:
        pass
    with contextlib.suppress(OSError):
        cgroup = parse_cgroup(_read(base + "/cgroup"))
    return ProcessContext(
        cwd=cwd,
        cwd_deleted=cwd_deleted,
        exe_dev=exe_dev,
        exe_ino=exe_ino,
        exe_memfd=exe_memfd,
        exe_deleted=exe_deleted,
        creds=creds,
        tty=tty,
        sid=sid,
        login_uid=login_uid,
        login_session=login_session,
        pidns=pidns,
        ns_pid=ns_pid,
        mntns=mntns,
        cgroup=cgroup,
    )


def _read(path: str) -> bytes:
    """The whole file, by raw system calls: a file object's set-up cost as much
    as the read itself for these small files, and the snapshot reads six per
    process. /proc may hand a long file (cmdline) over in pieces."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def snapshot(proc: Path = Path("/proc")) -> list[ProcInfo]:
    """Every process now running, with its context. Processes that end while
    we read their stat, status or cmdline are skipped; one that ends later
    keeps a partial context."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        base = f"{proc}/{name}"
        try:
            stat = _read(base + "/stat")
            status = _read(base + "/status")
            comm, ppid, threads, start_ns = parse_stat(stat, ticks)
            uid = parse_uid(status)
            cmdline = _read(base + "/cmdline")
        except (OSError, ValueError, IndexError):
            continue  # gone, or a kernel thread mid-exit
        argv = cmdline[:-1].split(b"\0") if cmdline else []
        context = read_context(base, stat, status)
        out.append(ProcInfo(int(name), ppid, uid, comm, argv, start_ns, threads, context))
    out.sort(key=lambda p: p.pid)
    return out
