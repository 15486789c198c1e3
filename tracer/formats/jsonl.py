"""The JSON form of events: one object per line, the schema in the README.

Strings a process chose (comm, filename, argv) are bytes and may not be UTF-8.
They are decoded with PEP 383's surrogateescape and written with ensure_ascii,
so an undecodable byte 0xNN appears as the escape \\udcNN. Valid UTF-8 never
produces a lone surrogate, so the mapping is lossless:
`s.encode("utf-8", "surrogateescape")` gives back the exact bytes.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from proctrace.model.clock import TS_LIMIT, Clock
from proctrace.model.events import (
    CLONE_THREAD,
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
    wait_status,
)
from proctrace.model.memo import remember

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


_HANDLERS = {0: "default", 1: "ignore"}
_HANDLER_VALUES = {"default": 0, "ignore": 1, "handler": 2}  # a handler's address is not kept
_RESULT_VALUES = {name: value for value, name in SIGNAL_RESULTS.items()}


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def raw_bytes(value: str) -> bytes:
    if type(value) is not str:
        raise TypeError(f"expected a string, not {type(value).__name__}")
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


# event_json writes the same text as `_encode(event_dict(ev, clock))`, about
# twice as fast: it is the per-event cost of --json and of every recording.
# tests/test_jsonout.py checks the two agree to the byte on arbitrary events.


_quoted: dict[bytes, str] = {}


def _q(raw: bytes) -> str:
    """`raw` as a JSON string. Names and arguments recur (comms, flags, paths),
    so short ones are quoted once."""
    quoted = _quoted.get(raw)
    if quoted is None:
        quoted = _quote(raw.decode("utf-8", "surrogateescape"))
        if len(raw) <= 256:
            remember(_quoted, raw, quoted)
    return quoted


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _head(ev: Event, clock: Clock) -> str:
    return (
        f'{{"type":"{ev.kind}","ts_ns":{ev.ts_ns},"time":"{clock.iso(ev.ts_ns)}","pid":{ev.pid},"tgid":{ev.tgid},'
        f'"ppid":{ev.ppid},"comm":{_q(ev.comm)},"uid":{ev.uid},"start_ns":{ev.start_ns},"cpu":{ev.cpu}'
    )


def _exec_json(ev: ExecEvent, clock: Clock) -> str:
    err = _quote(errno_name(ev.errno)) if ev.errno else "null"
    old_pid = ev.old_pid if ev.old_pid != ev.pid else "null"
    return (
        f'{_head(ev, clock)},"filename":{_q(ev.filename)},"argv":[{",".join([_q(a) for a in ev.argv])}],'
        f'"argv_truncated":{_b(ev.argv_truncated)},"filename_truncated":{_b(ev.filename_truncated)},'
        f'"argv_unreadable":{_b(ev.argv_unreadable)},"errno":{err},"old_pid":{old_pid}}}'
    )


def _fork_json(ev: ForkEvent, clock: Clock) -> str:
    return (
        f'{_head(ev, clock)},"child_pid":{ev.child_pid},"child_tgid":{ev.child_tgid},"child_ppid":{ev.child_ppid},'
        f'"thread":{"true" if ev.clone_flags & CLONE_THREAD else "false"},"clone_flags":{ev.clone_flags}}}'
    )


_status_texts: dict[int, str] = {}


def _status_json(st: WaitStatus) -> str:
    text = _status_texts.get(st.raw)
    if text is None:
        code = st.exit_code
        sig = st.signal
        text = (
            f'"exit_code":{"null" if code is None else code},"signal":{"null" if sig is None else _quote(sig)},'
            f'"core_dumped":{_b(st.core_dumped)},"status":{st.raw}'
        )
        remember(_status_texts, st.raw, text)
    return text


def _exit_json(ev: ExitEvent, clock: Clock) -> str:
    return (
        f'{_head(ev, clock)},{_status_json(ev.status)},"process_exit":{_b(ev.process_exit)},'
        f'"lifetime_ns":{ev.lifetime_ns}}}'
    )


def _signal_json(ev: SignalEvent, clock: Clock) -> str:
    sender = ev.sender_pid
    common = (
        f'{_head(ev, clock)},"signal":{_quote(ev.signal)},"signo":{ev.signo},'
        f'"stage":"{"deliver" if ev.stage == SIGNAL_DELIVER else "generate"}","target_pid":{ev.target_pid},'
        f'"target_comm":{_q(ev.target_comm)},"sender_pid":{"null" if sender is None else sender},"code":{ev.code}'
    )
    if ev.stage == SIGNAL_DELIVER:
        group_exit = _quote(signal_name(ev.group_exit_signo)) if ev.group_exit_signo else "null"
        return f'{common},"handler":"{_HANDLERS.get(ev.handler, "handler")}","group_exit_signal":{group_exit}}}'
    result = _quote(SIGNAL_RESULTS.get(ev.result, str(ev.result)))
    return f'{common},"result":{result},"group":{_b(ev.group)}}}'


def _reap_json(ev: ReapEvent, clock: Clock) -> str:
    return f'{_head(ev, clock)},"reaped_pid":{ev.reaped_pid},{_status_json(ev.status)}}}'


_JSON_BY_TYPE: dict[type, Any] = {
    ExecEvent: _exec_json,
    ForkEvent: _fork_json,
    ExitEvent: _exit_json,
    SignalEvent: _signal_json,
    ReapEvent: _reap_json,
}


def event_json(ev: Event, clock: Clock) -> str:
    return _JSON_BY_TYPE[type(ev)](ev, clock)


def lost_json(ts_ns: int, count: int, total: int, clock: Clock) -> str:
    """The line that reports lost events, in the stream and in recordings alike."""
    return dumps_line({"type": "lost", "ts_ns": ts_ns, "time": clock.iso(ts_ns), "count": count, "total": total})


def dumps_line(obj: Any) -> str:
    """One JSON Lines record, in the same compact ASCII form as the events."""
    return _encode(obj) + "\n"


# Plain loops: these run for every field of every record read back, and are
# several times faster than all() over a generator.
def _ints(*values: object) -> bool:
    for v in values:  # noqa: SIM110
        if type(v) is not int:
            return False
    return True


def _common(d: dict[str, Any]) -> tuple[int, int, int, int, int, bytes, int, int]:
    ts, pid, tgid, ppid, uid, comm, start, cpu = (
        d["ts_ns"], d["pid"], d["tgid"], d["ppid"], d["uid"], d["comm"], d["start_ns"], d["cpu"]
    )  # fmt: skip
    if not (
        type(ts) is int and type(pid) is int and type(tgid) is int and type(ppid) is int
        and type(uid) is int and type(start) is int and type(cpu) is int and 0 <= ts < TS_LIMIT
    ):  # fmt: skip
        raise ValueError("ts_ns, pid, tgid, ppid, uid, start_ns and cpu must be integers")
    if type(comm) is not str:
        raise TypeError("comm must be a string")
    return ts, pid, tgid, ppid, uid, comm.encode("utf-8", "surrogateescape"), start, cpu


def _bools(*values: object) -> bool:
    for v in values:  # noqa: SIM110
        if type(v) is not bool:
            return False
    return True


def _fork(d: dict[str, Any]) -> ForkEvent:
    common = _common(d)
    child_pid, child_tgid, child_ppid, flags = d["child_pid"], d["child_tgid"], d["child_ppid"], d["clone_flags"]
    if not _ints(child_pid, child_tgid, child_ppid, flags):
        raise ValueError("fork fields must be integers")
    return ForkEvent(*common, child_pid, child_tgid, child_ppid, flags)


def _exec(d: dict[str, Any]) -> ExecEvent:
    common = _common(d)
    argv, err, old_pid = d["argv"], d["errno"], d["old_pid"]
    flags = d["argv_truncated"], d["filename_truncated"], d["argv_unreadable"]
    if type(argv) is not list or not _bools(*flags) or not (old_pid is None or type(old_pid) is int):
        raise ValueError("exec fields have the wrong types")
    return ExecEvent(
        *common,
        raw_bytes(d["filename"]),
        list(map(raw_bytes, argv)),
        *flags,
        0 if err is None else errno_number(err),
        common[1] if old_pid is None else old_pid,
    )


def _exit(d: dict[str, Any]) -> ExitEvent:
    common = _common(d)
    status, process_exit, lifetime = d["status"], d["process_exit"], d["lifetime_ns"]
    if not (_ints(status, lifetime) and type(process_exit) is bool):
        raise ValueError("exit fields have the wrong types")
    ts, start = common[0], common[6]
    # Only the start the lifetime was measured from is recorded.
    return ExitEvent(*common, wait_status(status), status, process_exit, start if process_exit else ts - lifetime)


def _signal(d: dict[str, Any]) -> SignalEvent:
    common = _common(d)
    signo, code, target_pid = d["signo"], d["code"], d["target_pid"]
    if not _ints(signo, code, target_pid):
        raise ValueError("signal fields must be integers")
    if d["stage"] == "deliver":
        group_exit = d["group_exit_signal"]
        stage, result, group = SIGNAL_DELIVER, 0, False
        handler = _HANDLER_VALUES[d["handler"]]
        group_exit_signo = signal_number(group_exit) if group_exit else 0
    else:
        stage, handler, group_exit_signo = SIGNAL_GENERATE, 0, 0
        result = d["result"]
        # event_dict writes a result it has no name for as its number.
        result = _RESULT_VALUES[result] if result in _RESULT_VALUES else int(result)
        group = d["group"]
        if type(group) is not bool:
            raise ValueError("group must be a boolean")
    target_comm = raw_bytes(d["target_comm"])
    return SignalEvent(*common, stage, signo, code, target_pid, target_comm, result, group, handler, group_exit_signo)


def _reap(d: dict[str, Any]) -> ReapEvent:
    common = _common(d)
    reaped_pid, status = d["reaped_pid"], d["status"]
    if not _ints(reaped_pid, status):
        raise ValueError("reap fields must be integers")
    return ReapEvent(*common, reaped_pid, wait_status(status))


_FROM_DICT = {"fork": _fork, "exec": _exec, "exit": _exit, "signal": _signal, "reap": _reap}


def event_from_dict(d: dict[str, Any]) -> Event:
    """The inverse of event_dict: `event_dict(event_from_dict(d), clock) == d`
    for every d that event_dict produced with the same clock. Strict about
    types, since it reads files anyone may have written: raises KeyError,
    TypeError or ValueError on objects that are not such events."""
    try:
        convert = _FROM_DICT[d["type"]]
    except KeyError:
        raise ValueError(f"unknown event type {d.get('type')!r}") from None
    return convert(d)
