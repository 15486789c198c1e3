"""The JSON form of events: one object per line, the schema in the README.

Strings a process chose (comm, filename, argv) are bytes and may not be UTF-8.
They are decoded with PEP 383's surrogateescape and written with ensure_ascii,
so an undecodable byte 0xNN appears as the escape \\udcNN. Valid UTF-8 never
produces a lone surrogate, so the mapping is lossless:
`s.encode("utf-8", "surrogateescape")` gives back the exact bytes.
"""

from __future__ import annotations

import json
from typing import Any

from tracer.clock import Clock
from tracer.events import (
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    SIGNAL_RESULTS,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    WaitStatus,
    errno_name,
    errno_number,
    signal_name,
    signal_number,
)

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


_HANDLERS = {0: "default", 1: "ignore"}
_HANDLER_VALUES = {"default": 0, "ignore": 1, "handler": 2}  # a handler's address is not kept
_RESULT_VALUES = {name: value for value, name in SIGNAL_RESULTS.items()}


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def raw_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def event_dict(ev: Event, clock: Clock) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": ev.kind,
        "ts_ns": ev.ts_ns,
        "time": clock.iso(ev.ts_ns),
        "pid": ev.pid,
        "tgid": ev.tgid,
        "ppid": ev.ppid,
        "comm": text(ev.comm),
        "uid": ev.uid,
        "start_ns": ev.start_ns,
        "cpu": ev.cpu,
    }
    if isinstance(ev, ExecEvent):
        d["filename"] = text(ev.filename)
        d["argv"] = [text(a) for a in ev.argv]
        d["argv_truncated"] = ev.argv_truncated
        d["filename_truncated"] = ev.filename_truncated
        d["argv_unreadable"] = ev.argv_unreadable
        d["errno"] = errno_name(ev.errno) if ev.errno else None
        d["old_pid"] = ev.old_pid if ev.old_pid != ev.pid else None
    elif isinstance(ev, ForkEvent):
        d["child_pid"] = ev.child_pid
        d["child_tgid"] = ev.child_tgid
        d["child_ppid"] = ev.child_ppid
        d["thread"] = ev.thread
        d["clone_flags"] = ev.clone_flags
    elif isinstance(ev, ExitEvent):
        st = ev.status
        d["exit_code"] = st.exit_code
        d["signal"] = st.signal
        d["core_dumped"] = st.core_dumped
        d["status"] = st.raw
        d["process_exit"] = ev.process_exit
        d["lifetime_ns"] = ev.lifetime_ns
    elif isinstance(ev, SignalEvent):
        d["signal"] = ev.signal
        d["signo"] = ev.signo
        d["stage"] = "deliver" if ev.stage == SIGNAL_DELIVER else "generate"
        d["target_pid"] = ev.target_pid
        d["target_comm"] = text(ev.target_comm)
        d["sender_pid"] = ev.sender_pid
        d["code"] = ev.code
        if ev.stage == SIGNAL_DELIVER:
            d["handler"] = _HANDLERS.get(ev.handler, "handler")
            d["group_exit_signal"] = signal_name(ev.group_exit_signo) if ev.group_exit_signo else None
        else:
            d["result"] = SIGNAL_RESULTS.get(ev.result, str(ev.result))
            d["group"] = ev.group
    elif isinstance(ev, ReapEvent):
        d["reaped_pid"] = ev.reaped_pid
        d["exit_code"] = ev.status.exit_code
        d["signal"] = ev.status.signal
        d["core_dumped"] = ev.status.core_dumped
        d["status"] = ev.status.raw
    return d


def event_json(ev: Event, clock: Clock) -> str:
    return _encode(event_dict(ev, clock))


def dumps_line(obj: Any) -> str:
    """One JSON Lines record, in the same compact ASCII form as the events."""
    return _encode(obj) + "\n"


def _signal_result(name: str) -> int:
    # event_dict writes a result it has no name for as its number.
    return _RESULT_VALUES[name] if name in _RESULT_VALUES else int(name)


def event_from_dict(d: dict[str, Any]) -> Event:
    """The inverse of event_dict: `event_dict(event_from_dict(d), clock) == d`
    for every d that event_dict produced with the same clock. Raises KeyError,
    TypeError or ValueError on objects that are not such events."""
    kind = d["type"]
    common = (
        int(d["ts_ns"]),
        int(d["pid"]),
        int(d["tgid"]),
        int(d["ppid"]),
        int(d["uid"]),
        raw_bytes(d["comm"]),
        int(d["start_ns"]),
        int(d["cpu"]),
    )
    if kind == "exec":
        return ExecEvent(
            *common,
            filename=raw_bytes(d["filename"]),
            argv=[raw_bytes(a) for a in d["argv"]],
            argv_truncated=bool(d["argv_truncated"]),
            filename_truncated=bool(d["filename_truncated"]),
            argv_unreadable=bool(d["argv_unreadable"]),
            errno=errno_number(d["errno"]) if d["errno"] is not None else 0,
            old_pid=int(d["old_pid"]) if d["old_pid"] is not None else int(d["pid"]),
        )
    if kind == "fork":
        return ForkEvent(
            *common,
            child_pid=int(d["child_pid"]),
            child_tgid=int(d["child_tgid"]),
            child_ppid=int(d["child_ppid"]),
            clone_flags=int(d["clone_flags"]),
        )
    if kind == "exit":
        ts = int(d["ts_ns"])
        process_exit = bool(d["process_exit"])
        return ExitEvent(
            *common,
            status=WaitStatus(int(d["status"])),
            task_exit_code=int(d["status"]),
            process_exit=process_exit,
            # Only the start that the lifetime was measured from is recorded.
            task_start_ns=int(d["start_ns"]) if process_exit else ts - int(d["lifetime_ns"]),
        )
    if kind == "signal":
        deliver = d["stage"] == "deliver"
        return SignalEvent(
            *common,
            stage=SIGNAL_DELIVER if deliver else SIGNAL_GENERATE,
            signo=int(d["signo"]),
            code=int(d["code"]),
            target_pid=int(d["target_pid"]),
            target_comm=raw_bytes(d["target_comm"]),
            result=0 if deliver else _signal_result(d["result"]),
            group=False if deliver else bool(d["group"]),
            handler=_HANDLER_VALUES[d["handler"]] if deliver else 0,
            group_exit_signo=signal_number(d["group_exit_signal"]) if deliver and d["group_exit_signal"] else 0,
        )
    if kind == "reap":
        return ReapEvent(*common, reaped_pid=int(d["reaped_pid"]), status=WaitStatus(int(d["status"])))
    raise ValueError(f"unknown event type {kind!r}")
