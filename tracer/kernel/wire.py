"""Decoding of the wire events defined in bpf/event.h.

The layouts below mirror that header field for field; tests/test_wire_layout.py
compiles the header and fails if the two ever disagree.
"""

from __future__ import annotations

import struct

from proctrace.model.events import (
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    _wait_statuses,
    wait_status,
)
from proctrace.model.memo import remember

KIND_FORK, KIND_EXEC, KIND_EXIT, KIND_SIGNAL, KIND_REAP = 1, 2, 3, 4, 5

EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_FILENAME_TRUNCATED = 1 << 1
EXEC_ARGV_UNREADABLE = 1 << 2

# enum pt_class: the index of each class's loss counter, in model.events.EVENT_CLASSES order
CLASS_LIFECYCLE, CLASS_SIGNAL = 0, 1
# pt_fold_key.reason
FOLD_PTRACE, FOLD_RATE = 1, 2

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
    # Not events but the key and value of the folded_signals map; the key has no header.
    "pt_fold_key": ("<IIIHBB", ("sender_tgid", "target_pid", "generation", "signo", "stage", "reason")),
    "pt_fold": ("<QQ16s", ("count", "last_ns", "target_comm")),
}
HEADERLESS = frozenset({"pt_header", "pt_fold_key"})

HEADER = struct.Struct(LAYOUTS["pt_header"][0])
HEADER_SIZE = HEADER.size
HEADER_KIND_OFFSET = 16  # of pt_header.kind, a little-endian u32
_KIND = struct.Struct("<I")


def _whole(name: str) -> struct.Struct:
    """Header and payload of one kind as one struct: a single unpack per event."""
    return struct.Struct(LAYOUTS["pt_header"][0] + LAYOUTS[name][0].removeprefix("<"))


FORK = _whole("pt_fork")
EXEC = _whole("pt_exec")
EXIT = _whole("pt_exit")
SIGNAL = _whole("pt_signal")
REAP = _whole("pt_reap")
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


def decode(buf: bytes) -> Event:
    return decode_at(buf, 0, len(buf))


def decode_at(data: bytes, offset: int, size: int) -> Event:
    """The event in data[offset : offset + size].

    Decoding in place spares the ring reader a copy of each record. This is
    the hottest function of a live session, so each kind is one unpack, the
    event is built positionally (keywords cost ~1 us here) and the command
    name cache is consulted inline.
    """
    if size < HEADER_SIZE:
        raise DecodeError(f"event of {size} bytes is shorter than its header")
    kind = data[offset + HEADER_KIND_OFFSET]  # the low byte; each branch checks the whole u32
    comms = _comms
    if kind == KIND_FORK:
        if size < FORK.size:
            raise DecodeError("fork event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, flags, child_pid, child_tgid, child_ppid, _ = FORK.unpack_from(
            data, offset
        )
        if k == KIND_FORK:
            comm = comms.get(comm) or _comm(comm)
            return ForkEvent(ts, pid, tgid, ppid, uid, comm, start, cpu, child_pid, child_tgid, child_ppid, flags)
    elif kind == KIND_EXEC:
        if size < EXEC.size:
            raise DecodeError("exec event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, err, old_pid, flags, flen, alen, _ = EXEC.unpack_from(
            data, offset
        )
        if k == KIND_EXEC:
            tail = offset + EXEC.size
            if EXEC.size + flen + alen > size:
                raise DecodeError("exec event shorter than its filename and arguments")
            comm = comms.get(comm) or _comm(comm)
            return ExecEvent(
                ts,
                pid,
                tgid,
                ppid,
                uid,
                comm,
                start,
                cpu,
                data[tail : tail + flen],
                split_argv(data[tail + flen : tail + flen + alen]),
                bool(flags & EXEC_ARGV_TRUNCATED),
                bool(flags & EXEC_FILENAME_TRUNCATED),
                bool(flags & EXEC_ARGV_UNREADABLE),
                err,
                old_pid,
            )
    elif kind == KIND_EXIT:
        if size < EXIT.size:
            raise DecodeError("exit event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, task_start, status, task_code, group_dead = EXIT.unpack_from(
            data, offset
        )
        if k == KIND_EXIT:
            comm = comms.get(comm) or _comm(comm)
            ws = _wait_statuses.get(status) or wait_status(status)
            return ExitEvent(ts, pid, tgid, ppid, uid, comm, start, cpu, ws, task_code, bool(group_dead), task_start)
    elif kind == KIND_REAP:
        if size < REAP.size:
            raise DecodeError("reap event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, reaped, status = REAP.unpack_from(data, offset)
        if k == KIND_REAP:
            comm = comms.get(comm) or _comm(comm)
            ws = _wait_statuses.get(status) or wait_status(status)
            return ReapEvent(ts, pid, tgid, ppid, uid, comm, start, cpu, reaped, ws)
    elif kind == KIND_SIGNAL:
        if size < SIGNAL.size:
            raise DecodeError("signal event too short")
        ts, start, k, pid, tgid, ppid, uid, cpu, comm, *payload = SIGNAL.unpack_from(data, offset)
        if k == KIND_SIGNAL:
            signo, code, target, result, handler, gsig, stage, group, tcomm = payload
            comm = comms.get(comm) or _comm(comm)
            tcomm = comms.get(tcomm) or _comm(tcomm)
            common = (ts, pid, tgid, ppid, uid, comm, start, cpu)
            return SignalEvent(*common, stage, signo, code, target, tcomm, result, bool(group), handler, gsig)
    raise DecodeError(f"unknown event kind {_KIND.unpack_from(data, offset + HEADER_KIND_OFFSET)[0]}")


def fold_generation(key: bytes) -> int:
    """The counting period a folded_signals key belongs to."""
    return FOLDED_KEY.unpack_from(key)[2]


def decode_fold(key: bytes, value: bytes, read_ns: int) -> SignalSummaryEvent:
    """One folded_signals entry, read at `read_ns`, as the event that reports it."""
    if len(key) < FOLDED_KEY.size or len(value) < FOLDED.size:
        raise DecodeError("folded signal entry too short")
    _sender, target, _generation, signo, stage, reason = FOLDED_KEY.unpack_from(key)
    first, start, _kind, pid, tgid, ppid, uid, cpu, comm, count, last, tcomm = FOLDED.unpack_from(value)
    common = (read_ns, pid, tgid, ppid, uid, _comm(comm), start, cpu)
    return SignalSummaryEvent(*common, reason, stage, signo, target, _comm(tcomm), count, first, last)
