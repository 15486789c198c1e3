"""Decoding of the wire events defined in bpf/event.h.

The layouts below mirror that header field for field; tests/test_wire_layout.py
compiles the header and fails if the two ever disagree.
"""

from __future__ import annotations

import struct

from tracer.events import (
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    wait_status,
)

KIND_FORK, KIND_EXEC, KIND_EXIT, KIND_SIGNAL, KIND_REAP = 1, 2, 3, 4, 5

EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_FILENAME_TRUNCATED = 1 << 1
EXEC_ARGV_UNREADABLE = 1 << 2

# struct name -> (struct format, field names in order; "_" fields are padding)
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pt_header": ("<QQIIIIII16s", ("ts_ns", "start_ns", "kind", "pid", "tgid", "ppid", "uid", "cpu", "comm")),
    "pt_fork": ("<QIIII", ("clone_flags", "child_pid", "child_tgid", "child_ppid", "_pad")),
    "pt_exec": ("<iIIIII", ("err", "old_pid", "flags", "filename_len", "argv_len", "_pad")),
    "pt_exit": ("<QIIB7x", ("task_start_ns", "status", "task_exit_code", "group_dead")),
    "pt_signal": (
        "<iiIiQIBB2x16s",
        ("signo", "code", "target_pid", "result", "handler", "group_exit_signo", "stage", "group", "target_comm"),
    ),
    "pt_reap": ("<II", ("reaped_pid", "status")),
}

HEADER = struct.Struct(LAYOUTS["pt_header"][0])
FORK = struct.Struct(LAYOUTS["pt_fork"][0])
EXEC = struct.Struct(LAYOUTS["pt_exec"][0])
EXIT = struct.Struct(LAYOUTS["pt_exit"][0])
SIGNAL = struct.Struct(LAYOUTS["pt_signal"][0])
REAP = struct.Struct(LAYOUTS["pt_reap"][0])
HEADER_SIZE = HEADER.size


class DecodeError(ValueError):
    """Bytes that are not a wire event of a known kind and size."""


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


_comms: dict[bytes, bytes] = {}


def _comm(raw: bytes) -> bytes:
    # A machine runs few distinct command names: cut each one once.
    comm = _comms.get(raw)
    if comm is None:
        comm = _cstr(raw)
        if len(_comms) < 4096:
            _comms[raw] = comm
    return comm


def split_argv(area: bytes) -> list[bytes]:
    """The kernel's argument area: each argument followed by a NUL."""
    if not area:
        return []
    if area.endswith(b"\0"):
        area = area[:-1]
    return area.split(b"\0")


def decode(buf: bytes) -> Event:
    if len(buf) < HEADER_SIZE:
        raise DecodeError(f"event of {len(buf)} bytes is shorter than its header")
    ts, start, kind, pid, tgid, ppid, uid, cpu, comm = HEADER.unpack_from(buf)
    common = (ts, pid, tgid, ppid, uid, _comm(comm), start, cpu)
    body = len(buf) - HEADER_SIZE
    if kind == KIND_EXEC:
        if body < EXEC.size:
            raise DecodeError("exec event too short")
        err, old_pid, flags, flen, alen, _ = EXEC.unpack_from(buf, HEADER_SIZE)
        tail = HEADER_SIZE + EXEC.size
        if tail + flen + alen > len(buf):
            raise DecodeError("exec event shorter than its filename and arguments")
        # Positional arguments, in ExecEvent's field order: keywords cost ~1 us here.
        return ExecEvent(
            *common,
            buf[tail : tail + flen],
            split_argv(buf[tail + flen : tail + flen + alen]),
            bool(flags & EXEC_ARGV_TRUNCATED),
            bool(flags & EXEC_FILENAME_TRUNCATED),
            bool(flags & EXEC_ARGV_UNREADABLE),
            err,
            old_pid,
        )
    if kind == KIND_FORK:
        if body < FORK.size:
            raise DecodeError("fork event too short")
        flags, child_pid, child_tgid, child_ppid, _ = FORK.unpack_from(buf, HEADER_SIZE)
        return ForkEvent(*common, child_pid, child_tgid, child_ppid, flags)
    if kind == KIND_EXIT:
        if body < EXIT.size:
            raise DecodeError("exit event too short")
        task_start, status, task_code, group_dead = EXIT.unpack_from(buf, HEADER_SIZE)
        return ExitEvent(*common, wait_status(status), task_code, bool(group_dead), task_start)
    if kind == KIND_SIGNAL:
        if body < SIGNAL.size:
            raise DecodeError("signal event too short")
        signo, code, target, result, handler, gsig, stage, group, tcomm = SIGNAL.unpack_from(buf, HEADER_SIZE)
        return SignalEvent(*common, stage, signo, code, target, _comm(tcomm), result, bool(group), handler, gsig)
    if kind == KIND_REAP:
        if body < REAP.size:
            raise DecodeError("reap event too short")
        reaped, status = REAP.unpack_from(buf, HEADER_SIZE)
        return ReapEvent(*common, reaped, wait_status(status))
    raise DecodeError(f"unknown event kind {kind}")
