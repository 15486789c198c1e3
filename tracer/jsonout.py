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
    SIGNAL_RESULTS,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    errno_name,
    signal_name,
)

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


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
            d["handler"] = {0: "default", 1: "ignore"}.get(ev.handler, "handler")
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
