"""Decoding of the wire events defined in bpf/event.h.

The layouts below mirror that header field for field; tests/test_wire_layout.py
compiles the header and fails if the two ever disagree.
"""

from __future__ import annotations

import mmap
import os
import platform
import struct

from proctrace import PURE_PYTHON_ENV, pure_python
from proctrace.kernel.program import CRED_SYSCALL_NUMBERS
from proctrace.kernel.ringbuf import python_walk
from proctrace.model import events as _events
from proctrace.model.context import UNSET_ID, Credentials, ProcessContext, interned_credentials, tty_name
from proctrace.model.events import (
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    ResourceUsage,
    SignalEvent,
    SignalSummaryEvent,
    _wait_statuses,
    wait_status,
)
from proctrace.model.memo import remember

KIND_FORK, KIND_EXEC, KIND_EXIT, KIND_SIGNAL, KIND_REAP, KIND_CRED, KIND_CGROUP = 1, 2, 3, 4, 5, 6, 7

EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_FILENAME_TRUNCATED = 1 << 1
EXEC_ARGV_UNREADABLE = 1 << 2
EXEC_CONTEXT = 1 << 3
EXEC_CWD_TRUNCATED = 1 << 4
EXEC_CWD_DELETED = 1 << 5
EXEC_EXE_MEMFD = 1 << 6
EXEC_EXE_DELETED = 1 << 7
EXEC_CRED_BEFORE = 1 << 8
EXEC_ENV = 1 << 9
EXEC_ENV_TRUNCATED = 1 << 10
EXEC_ENV_UNREADABLE = 1 << 11
EXEC_LOGIN = 1 << 12
EXEC_EXE = 1 << 13

# pt_exit.has_usage and pt_exit.death
USAGE, USAGE_IO = 1 << 0, 1 << 1
DEATH_OOM, DEATH_SENT = 1 << 0, 1 << 1
_PAGE_KB = mmap.PAGESIZE // 1024

# pt_cgroup.action
CGROUP_MKDIR, CGROUP_RMDIR, CGROUP_RENAME = 1, 2, 3
GROUPS_MAX = 16  # PT_GROUPS_MAX

_CRED_FORMAT = "IIIIIIIIQ"
_CRED_NAMES = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "cap_effective")


def _cred(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{name}" for name in _CRED_NAMES)


def _groups(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}[{i}]" for i in range(GROUPS_MAX))


# enum pt_class: the index of each class's loss counter, in model.events.EVENT_CLASSES order
CLASS_LIFECYCLE, CLASS_SIGNAL = 0, 1
# pt_fold_key.reason
FOLD_PTRACE, FOLD_RATE = 1, 2

# struct name -> (struct format, field names in order; "_" fields are padding)
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pt_header": (
        "<QQIIIIII16sQ",
        ("ts_ns", "start_ns", "kind", "pid", "tgid", "ppid", "uid", "cpu", "comm", "cgroup_id"),
    ),
    "pt_cred": ("<" + _CRED_FORMAT, _CRED_NAMES),
    "pt_fork": ("<QIIII", ("clone_flags", "child_pid", "child_tgid", "child_ppid", "_pad")),
    "pt_exec": (
        "<iIIIIIII" + _CRED_FORMAT + _CRED_FORMAT + "QIIIIIIII",
        (
            "err",
            "old_pid",
            "flags",
            "filename_len",
            "argv_len",
            "cwd_len",
            "env_len",
            "tty_dev",
            *_cred("cred"),
            *_cred("cred_before"),
            "exe_ino",
            "exe_dev",
            "sid",
            "login_uid",
            "login_session",
            "pidns",
            "ns_pid",
            "mntns",
            "_pad",
        ),
    ),
    "pt_cred_change": (
        f"<ii{_CRED_FORMAT}{_CRED_FORMAT}II{GROUPS_MAX}I{GROUPS_MAX}I",
        (
            "syscall_nr",
            "ret",
            *_cred("before"),
            *_cred("after"),
            "ngroups_before",
            "ngroups_after",
            *_groups("groups_before"),
            *_groups("groups_after"),
        ),
    ),
    "pt_cgroup": ("<QII", ("id", "action", "path_len")),
    "pt_exit": (
        "<QIIBBBxI" + "Q" * 12 + "16s",
        (
            "task_start_ns",
            "status",
            "task_exit_code",
            "group_dead",
            "has_usage",
            "death",
            "killed_by_pid",
            "utime_ns",
            "stime_ns",
            "runtime_ns",
            "min_flt",
            "maj_flt",
            "nvcsw",
            "nivcsw",
            "maxrss_kb",
            "hiwater_rss",
            "rss",
            "read_bytes",
            "write_bytes",
            "killed_by_comm",
        ),
    ),
    "pt_signal": (
        "<iiIiQIBB2x16s",
        ("signo", "code", "target_pid", "result", "handler", "group_exit_signo", "stage", "group", "target_comm"),
    ),
    "pt_reap": ("<IIB7x", ("reaped_pid", "status", "autoreaped")),
    # Not events but the key and value of the folded_signals map; the key has no header.
    "pt_fold_key": ("<IIIHBB", ("sender_tgid", "target_pid", "generation", "signo", "stage", "reason")),
    "pt_fold": ("<QQ16s", ("count", "last_ns", "target_comm")),
}
HEADERLESS = frozenset({"pt_header", "pt_fold_key", "pt_cred"})

HEADER = struct.Struct(LAYOUTS["pt_header"][0])
HEADER_SIZE = HEADER.size
HEADER_KIND_OFFSET = 16  # of pt_header.kind, a little-endian u32
_KIND = struct.Struct("<I")


def _whole(name: str) -> struct.Struct:
    """Header and payload of one kind as one struct: a single unpack per event."""
    return struct.Struct(LAYOUTS["pt_header"][0] + LAYOUTS[name][0].removeprefix("<"))


FORK = _whole("pt_fork")
EXEC = _whole("pt_exec")
# The exec event decoded in three parts: header and lengths; the two
# credentials, taken as bytes (a machine runs as few identities, so each is
# looked up whole and unpacked only the first time); the rest.
_EXEC_FRONT = struct.Struct(LAYOUTS["pt_header"][0] + "iIIIIIII")
CRED = struct.Struct(LAYOUTS["pt_cred"][0])
_EXEC_CRED_AT = _EXEC_FRONT.size
_EXEC_BACK = struct.Struct("<QIIIIIIII")
_EXEC_BACK_AT = _EXEC_CRED_AT + 2 * CRED.size
EXIT = _whole("pt_exit")
# The exit event decoded in parts, so that a thread's exit unpacks no usage
# and no exit builds a list of the thirty values: header to killed_by_pid;
# the twelve usage counters; the killer's comm.
_EXIT_FRONT = struct.Struct(LAYOUTS["pt_header"][0] + "QIIBBBxI")
_EXIT_USAGE = struct.Struct("<12Q")
_EXIT_USAGE_AT = _EXIT_FRONT.size
_EXIT_COMM_AT = _EXIT_USAGE_AT + _EXIT_USAGE.size
SIGNAL = _whole("pt_signal")
REAP = _whole("pt_reap")
CRED_CHANGE = _whole("pt_cred_change")
CGROUP = _whole("pt_cgroup")
FOLDED = _whole("pt_fold")
FOLDED_KEY = struct.Struct(LAYOUTS["pt_fold_key"][0])


class DecodeError(ValueError):
    """Bytes that are not a wire event of a known kind and size."""


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


_comms: dict[bytes, bytes] = {}


def _comm(raw: bytes) -> bytes:
    # A machine runs few distinct command names: cut each one once.
    comm = _comms.get(raw)
    return remember(_comms, raw, _cstr(raw)) if comm is None else comm


def split_argv(area: bytes) -> list[bytes]:
    """The kernel's argument area: each argument followed by a NUL."""
    if not area:
        return []
    if area.endswith(b"\0"):
        area = area[:-1]
    return area.split(b"\0")


def kernel_dev(dev: int) -> int:
    """A device number as the kernel keeps it (major << 20 | minor) as stat(2)'s st_dev."""
    return os.makedev(dev >> 20, dev & 0xFFFFF)


def join_cwd(area: bytes, truncated: bool) -> bytes:
    """The working directory from its components, deepest first, each with a NUL
    (bpf read_cwd): absolute when complete, the deepest part (relative) when not."""
    parts = area.split(b"\0")
    parts.pop()  # after the last NUL; empty
    path = b"/".join(reversed(parts))
    return path if truncated else b"/" + path


def split_env(area: bytes) -> dict[bytes, bytes]:
    """NAME=VALUE strings, each with a NUL, as a dict; a string without "="
    (a program may put anything in its environment) is a name with an empty value."""
    env = {}
    for entry in split_argv(area):
        name, _, value = entry.partition(b"=")
        env[name] = value
    return env


_CRED_SYSCALLS = CRED_SYSCALL_NUMBERS.get(platform.machine(), {})
_CGROUP_ACTIONS = {
    CGROUP_MKDIR: _events.CGROUP_MKDIR,
    CGROUP_RMDIR: _events.CGROUP_RMDIR,
    CGROUP_RENAME: _events.CGROUP_RENAME,
}


def adjusted_cputime(utime: int, stime: int, runtime: int) -> tuple[int, int]:
    """(user, system) ns as the kernel reports them (cputime_adjust in
    kernel/sched/cputime.c): the ticks only split the scheduler's precise
    runtime between user and system time."""
    if stime == 0:
        return runtime, 0
    if utime == 0:
        return 0, runtime
    system = runtime * stime // (stime + utime)
    return runtime - system, system


def _usage(values: tuple[int, ...], flags: int) -> ResourceUsage:
    utime, stime, runtime, minflt, majflt, nvcsw, nivcsw, maxrss_kb, hiwater, rss, read, write = values
    user, system = adjusted_cputime(utime, stime, runtime)
    io = bool(flags & USAGE_IO)
    # The peak: of the images before this one (signal->maxrss) and of this one,
    # as exit_mm() will fold it in after the tracepoint.
    peak = max(maxrss_kb, max(hiwater, rss) * _PAGE_KB)
    return ResourceUsage(user, system, peak, minflt, majflt, nvcsw, nivcsw, read if io else None, write if io else None)


_creds: dict[bytes, Credentials] = {}
_cwds: dict[bytes, bytes] = {}
_ttys: dict[int, str] = {}
_devs: dict[int, int] = {}


def _credentials(raw: bytes) -> Credentials:
    creds = _creds.get(raw)
    return remember(_creds, raw, interned_credentials(CRED.unpack(raw))) if creds is None else creds


def _cwd_miss(area: bytes, truncated: bool) -> bytes:
    """The working directory of a cwd area not in the cache; a complete one is remembered."""
    cwd = join_cwd(area, truncated)
    return cwd if truncated else remember(_cwds, area, cwd)


def _tty_miss(tty_dev: int) -> str:
    return remember(_ttys, tty_dev, tty_name(tty_dev >> 20, tty_dev & 0xFFFFF))


def _dev_miss(exe_dev: int) -> int:
    return remember(_devs, exe_dev, kernel_dev(exe_dev))


def _context(
    data: bytes, offset: int, flags: int, tail: int, cwd_len: int, env_len: int, tty_dev: int
) -> ProcessContext:
    """The ProcessContext of the exec event at data[offset:], whose env and cwd
    parts begin at data[tail:]. Called for every exec: what recurs (credentials,
    directories, terminals) is decoded once per value."""
    at = offset + _EXEC_CRED_AT
    exe_ino, exe_dev, sid, login_uid, login_session, pidns, ns_pid, mntns, _ = _EXEC_BACK.unpack_from(
        data, offset + _EXEC_BACK_AT
    )
    has_exe = flags & EXEC_EXE
    login = flags & EXEC_LOGIN
    cwd_truncated = bool(flags & EXEC_CWD_TRUNCATED)
    cwd = None
    if cwd_len or not cwd_truncated:
        area = data[tail + env_len : tail + env_len + cwd_len]
        cwd = _cwds.get(area) if not cwd_truncated else None
        if cwd is None:
            cwd = _cwd_miss(area, cwd_truncated)
    tty = None
    if tty_dev:
        tty = _ttys.get(tty_dev) or _tty_miss(tty_dev)
    return ProcessContext(
        cwd,
        cwd_truncated,
        bool(flags & EXEC_CWD_DELETED),
        (_devs.get(exe_dev) or _dev_miss(exe_dev)) if has_exe else None,
        exe_ino if has_exe else None,
        bool(flags & EXEC_EXE_MEMFD),
        bool(flags & EXEC_EXE_DELETED),
        _credentials(data[at : at + CRED.size]),
        _credentials(data[at + CRED.size : at + 2 * CRED.size]) if flags & EXEC_CRED_BEFORE else None,
        tty,
        sid,
        (None if login_uid == UNSET_ID else login_uid) if login else None,
        (None if login_session == UNSET_ID else login_session) if login else None,
        pidns or None,
        ns_pid or None,
        mntns or None,
        None,  # the cgroup's path: user space knows it from the event's cgroup_id
        split_env(data[tail : tail + env_len]) if flags & EXEC_ENV else None,
        bool(flags & EXEC_ENV_TRUNCATED),
    )


def decode(buf: bytes) -> Event:
    return decode_at(buf, 0, len(buf))


def decode_at_python(data: bytes, offset: int, size: int) -> Event:
    """The event in data[offset : offset + size].

    Decoding in place spares the ring reader a copy of each record. This is
    the hottest function of a live session, so each kind is one unpack, the
    event is built positionally (keywords cost ~1 us here) and the command
    name cache is consulted inline. It is the reference decoder: the compiled
    one (_fastwire.c, see `decode_at` below) takes the common kinds and hands
    it every other record, and every error.
    """
    if size < HEADER_SIZE:
        raise DecodeError(f"event of {size} bytes is shorter than its header")
    kind = data[offset + HEADER_KIND_OFFSET]  # the low byte; each branch checks the whole u32
    comms = _comms
    if kind == KIND_FORK:
        if size < FORK.size:
            raise DecodeError("fork event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, flags, child_pid, child_tgid, child_ppid, _ = (
            FORK.unpack_from(data, offset)
        )
        if k == KIND_FORK:
            comm = comms.get(comm) or _comm(comm)
            ev = ForkEvent(ts, pid, tgid, ppid, uid, comm, start, cpu, child_pid, child_tgid, child_ppid, flags)
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_EXEC:
        if size < EXEC.size:
            raise DecodeError("exec event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, err, old_pid, flags, flen, alen, clen, elen, tty = (
            _EXEC_FRONT.unpack_from(data, offset)
        )
        if k == KIND_EXEC:
            tail = offset + EXEC.size
            end = tail + flen + alen
            if EXEC.size + flen + alen + clen + elen > size:
                raise DecodeError("exec event shorter than its filename, arguments, environment and directory")
            comm = comms.get(comm) or _comm(comm)
            ev = ExecEvent(
                ts,
                pid,
                tgid,
                ppid,
                uid,
                comm,
                start,
                cpu,
                data[tail : tail + flen],
                split_argv(data[tail + flen : end]),
                bool(flags & EXEC_ARGV_TRUNCATED),
                bool(flags & EXEC_FILENAME_TRUNCATED),
                bool(flags & EXEC_ARGV_UNREADABLE),
                err,
                old_pid,
                False,
                _context(data, offset, flags, end, clen, elen, tty) if flags & EXEC_CONTEXT else None,
            )
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_EXIT:
        if size < EXIT.size:
            raise DecodeError("exit event too short")
        (
            ts,
            start,
            k,
            pid,
            tgid,
            ppid,
            uid,
            cpu,
            comm,
            cg,
            task_start,
            status,
            task_code,
            group_dead,
            has,
            death,
            killer,
        ) = _EXIT_FRONT.unpack_from(data, offset)
        if k == KIND_EXIT:
            comm = comms.get(comm) or _comm(comm)
            ws = _wait_statuses.get(status) or wait_status(status)
            usage = _usage(_EXIT_USAGE.unpack_from(data, offset + _EXIT_USAGE_AT), has) if has & USAGE else None
            ev = ExitEvent(
                ts, pid, tgid, ppid, uid, comm, start, cpu, ws, task_code, bool(group_dead), task_start, usage
            )
            if death:
                ev.oom_killed = bool(death & DEATH_OOM)
                if death & DEATH_SENT:
                    at = offset + _EXIT_COMM_AT
                    ev.killed_by_pid = killer
                    ev.killed_by_comm = _comm(data[at : at + 16])
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_REAP:
        if size < REAP.size:
            raise DecodeError("reap event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, reaped, status, auto = REAP.unpack_from(data, offset)
        if k == KIND_REAP:
            comm = comms.get(comm) or _comm(comm)
            ws = _wait_statuses.get(status) or wait_status(status)
            ev = ReapEvent(ts, pid, tgid, ppid, uid, comm, start, cpu, reaped, ws, bool(auto))
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_SIGNAL:
        if size < SIGNAL.size:
            raise DecodeError("signal event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, *payload = SIGNAL.unpack_from(data, offset)
        if k == KIND_SIGNAL:
            signo, code, target, result, handler, gsig, stage, group, tcomm = payload
            comm = comms.get(comm) or _comm(comm)
            tcomm = comms.get(tcomm) or _comm(tcomm)
            common = (ts, pid, tgid, ppid, uid, comm, start, cpu)
            ev = SignalEvent(*common, stage, signo, code, target, tcomm, result, bool(group), handler, gsig)
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_CRED:
        if size < CRED_CHANGE.size:
            raise DecodeError("cred event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, nr, _ret, *values = CRED_CHANGE.unpack_from(data, offset)
        if k == KIND_CRED:
            before, after = Credentials(*values[0:9]), Credentials(*values[9:18])
            n_before, n_after = values[18], values[19]
            groups = values[20:]
            ev = CredEvent(
                ts, pid, tgid, ppid, uid, _comm(comm), start, cpu,
                _CRED_SYSCALLS.get(nr, f"syscall {nr}"), before, after,
                tuple(groups[: min(n_before, GROUPS_MAX)]),
                tuple(groups[GROUPS_MAX : GROUPS_MAX + min(n_after, GROUPS_MAX)]),
                n_before, n_after,
            )  # fmt: skip
            ev.cgroup_id = cg
            return ev
    elif kind == KIND_CGROUP:
        if size < CGROUP.size:
            raise DecodeError("cgroup event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, cg, target_id, action, path_len = CGROUP.unpack_from(
            data, offset
        )
        if k == KIND_CGROUP:
            if CGROUP.size + path_len > size or action not in _CGROUP_ACTIONS:
                raise DecodeError("cgroup event shorter than its path, or of an unknown action")
            path = bytes(data[offset + CGROUP.size : offset + CGROUP.size + path_len])
            ev = CgroupEvent(
                ts, pid, tgid, ppid, uid, _comm(comm), start, cpu, _CGROUP_ACTIONS[action], target_id, path
            )
            ev.cgroup_id = cg
            return ev
    raise DecodeError(f"unknown event kind {_KIND.unpack_from(data, offset + HEADER_KIND_OFFSET)[0]}")


def fold_generation(key: bytes) -> int:
    """The counting period a folded_signals key belongs to."""
    return FOLDED_KEY.unpack_from(key)[2]


def decode_fold(key: bytes, value: bytes, read_ns: int) -> SignalSummaryEvent:
    """One folded_signals entry, read at `read_ns`, as the event that reports it."""
    if len(key) < FOLDED_KEY.size or len(value) < FOLDED.size:
        raise DecodeError("folded signal entry too short")
    _sender, target, _generation, signo, stage, reason = FOLDED_KEY.unpack_from(key)
    first, start, _kind, pid, tgid, ppid, uid, cpu, comm, cg, count, last, tcomm = FOLDED.unpack_from(value)
    common = (read_ns, pid, tgid, ppid, uid, _comm(comm), start, cpu)
    ev = SignalSummaryEvent(*common, reason, stage, signo, target, _comm(tcomm), count, first, last)
    ev.cgroup_id = cg
    return ev


# ---------------------------------------------------------------------------
# The compiled decoder


def _record_slots(cls: type) -> set[str]:
    """Every slot an instance of `cls` has, its bases' included."""
    return {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}


def _load_compiled() -> tuple[object | None, str]:
    """The compiled decoder, configured to share this module's classes, caches
    and functions; or None and why not."""
    if pure_python():
        return None, f"{PURE_PYTHON_ENV}=1"
    try:
        from proctrace.kernel import _fastwire  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"not built ({exc})"
    classes = {
        "ForkEvent": ForkEvent,
        "ExecEvent": ExecEvent,
        "ExitEvent": ExitEvent,
        "ReapEvent": ReapEvent,
        "SignalEvent": SignalEvent,
        "ProcessContext": ProcessContext,
        "ResourceUsage": ResourceUsage,
    }
    for key, names in _fastwire.fields().items():
        # A slot the compiled builder does not fill would be left unset: a
        # record field added in Python and not in C keeps the Python decoder.
        missing = _record_slots(classes[key]) - set(names)
        if missing or hasattr(classes[key], "__post_init__"):
            return None, f"{key} has fields the compiled decoder does not fill: {', '.join(sorted(missing))}"
    sizes = {name: struct.calcsize(LAYOUTS[name][0]) + (0 if name in HEADERLESS else HEADER_SIZE)
             for name in _fastwire.layout()}  # fmt: skip
    if sizes != _fastwire.layout():
        return None, "built from another bpf/event.h"
    _fastwire.configure(
        {
            **classes,
            "decode_at": decode_at_python,
            "comms": _comms,
            "comm_miss": _comm,
            "statuses": _wait_statuses,
            "status_miss": wait_status,
            "creds": _creds,
            "creds_miss": _credentials,
            "cwds": _cwds,
            "cwd_miss": _cwd_miss,
            "ttys": _ttys,
            "tty_miss": _tty_miss,
            "devs": _devs,
            "dev_miss": _dev_miss,
            "split_env": split_env,
        }
    )
    return _fastwire, "compiled"


COMPILED, DECODER = _load_compiled()
"""The compiled decoder module, or None; DECODER says which decodes, or why not the compiled one."""

# The decoder of every live session, and its walk over ring buffer data
# (ringbuf.RingReader.drain): the compiled ones where they are built.
decode_at = COMPILED.decode_at if COMPILED is not None else decode_at_python  # type: ignore[attr-defined]
walk_ring = COMPILED.walk_ring if COMPILED is not None else python_walk(decode_at_python)  # type: ignore[attr-defined]
