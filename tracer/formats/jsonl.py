"""The JSON form of events: one object per line, the schema in the README.

Strings a process chose (comm, filename, argv) are bytes and may not be UTF-8.
They are decoded with PEP 383's surrogateescape and written with ensure_ascii,
so an undecodable byte 0xNN appears as the escape \\udcNN. Valid UTF-8 never
produces a lone surrogate, so the mapping is lossless (as_text and as_bytes in
tracer/model/events.py). How outcomes, handlers and statuses become fields is
tracer/formats/words.py's.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from proctrace.formats.words import (
    HANDLER_NAMES,
    HANDLER_VALUES,
    OTHER_HANDLER,
    RESULT_VALUES,
    result_name,
    status_fields,
)
from proctrace.model.clock import TS_LIMIT, Clock
from proctrace.model.events import (
    CLONE_THREAD,
    FOLD_REASONS,
    LIFECYCLE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
    as_bytes,
    errno_name,
    errno_number,
    signal_name,
    signal_number,
    wait_status,
)
from proctrace.model.memo import remember

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


# event_json is the per-event cost of --json and of every recording, so it
# writes its text with f-strings rather than through a dict and json.dumps.
# tests/oracle.py spells each object out as a dict, and tests/test_jsonl.py
# checks that event_json writes exactly json.dumps of it, to the byte, on
# arbitrary events.


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


def _head(ev: Event, clock: Clock, record_type: str | None = None) -> str:
    """The fields every event has; `type` is its kind unless `record_type` says otherwise."""
    return (
        f'{{"type":"{record_type or ev.kind}","ts_ns":{ev.ts_ns},"time":"{clock.iso(ev.ts_ns)}",'
        f'"pid":{ev.pid},"tgid":{ev.tgid},"ppid":{ev.ppid},"comm":{_q(ev.comm)},"uid":{ev.uid},"start_ns":{ev.start_ns},"cpu":{ev.cpu}'
    )


def _exec_json(ev: ExecEvent, clock: Clock) -> str:
    err = _quote(errno_name(ev.errno)) if ev.errno else "null"
    old_pid = ev.old_pid if ev.old_pid != ev.pid else "null"
    return (
        f'{_head(ev, clock)},"filename":{_q(ev.filename)},"argv":[{",".join([_q(a) for a in ev.argv])}],'
        f'"argv_truncated":{_b(ev.argv_truncated)},"filename_truncated":{_b(ev.filename_truncated)},'
        f'"argv_unreadable":{_b(ev.argv_unreadable)},"errno":{err},"old_pid":{old_pid},'
        f'"path_search":{_b(ev.path_search)}}}'
    )


def _fork_json(ev: ForkEvent, clock: Clock) -> str:
    return (
        f'{_head(ev, clock)},"child_pid":{ev.child_pid},"child_tgid":{ev.child_tgid},"child_ppid":{ev.child_ppid},'
        f'"thread":{"true" if ev.clone_flags & CLONE_THREAD else "false"},"clone_flags":{ev.clone_flags}}}'
    )


_status_texts: dict[int, str] = {}


def _status_json(st: WaitStatus) -> str:
    """The status fields (words.status_fields) as JSON text, made once per status value."""
    return _status_texts.get(st.raw) or remember(_status_texts, st.raw, _encode(status_fields(st))[1:-1])


_result_texts: dict[int, str] = {}


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
        return f'{common},"handler":"{HANDLER_NAMES.get(ev.handler, OTHER_HANDLER)}","group_exit_signal":{group_exit}}}'
    result = _result_texts.get(ev.result) or remember(_result_texts, ev.result, _quote(result_name(ev.result)))
    return f'{common},"result":{result},"group":{_b(ev.group)}}}'


SUMMARY_TYPE = "signal_summary"
"""The JSON type of a SignalSummaryEvent: its kind is "signal", for the filters."""

_FOLD_REASON_VALUES = {name: value for value, name in FOLD_REASONS.items()}


def _summary_json(ev: SignalSummaryEvent, clock: Clock) -> str:
    sender = ev.sender_pid
    stage = "deliver" if ev.stage == SIGNAL_DELIVER else "generate"
    return (
        f'{_head(ev, clock, SUMMARY_TYPE)},"reason":"{FOLD_REASONS.get(ev.reason, ev.reason)}",'
        f'"signal":{_quote(ev.signal)},"signo":{ev.signo},"stage":"{stage}",'
        f'"target_pid":{ev.target_pid},"target_comm":{_q(ev.target_comm)},'
        f'"sender_pid":{"null" if sender is None else sender},"count":{ev.count},'
        f'"first_ns":{ev.first_ns},"last_ns":{ev.last_ns}}}'
    )


def _reap_json(ev: ReapEvent, clock: Clock) -> str:
    return f'{_head(ev, clock)},"reaped_pid":{ev.reaped_pid},{_status_json(ev.status)}}}'


_JSON_BY_TYPE: dict[type, Any] = {
    ExecEvent: _exec_json,
    ForkEvent: _fork_json,
    ExitEvent: _exit_json,
    SignalEvent: _signal_json,
    SignalSummaryEvent: _summary_json,
    ReapEvent: _reap_json,
}


def event_json(ev: Event, clock: Clock) -> str:
    return _JSON_BY_TYPE[type(ev)](ev, clock)


def lost_json(ts_ns: int, count: int, total: int, clock: Clock, event_class: str = LIFECYCLE) -> str:
    """The line that reports lost events of one class, in the stream and in recordings alike."""
    return dumps_line(
        {"type": "lost", "ts_ns": ts_ns, "time": clock.iso(ts_ns), "class": event_class, "count": count, "total": total}
    )


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
    # Recordings made before PATH searches were told apart have no path_search;
    # tracer/session/replay.py decides it for them.
    path_search = d.get("path_search", False)
    if type(path_search) is not bool or (path_search and err is None):
        raise ValueError("path_search must be a boolean, true only for a failed exec")
    return ExecEvent(
        *common,
        as_bytes(d["filename"]),
        list(map(as_bytes, argv)),
        *flags,
        0 if err is None else errno_number(err),
        common[1] if old_pid is None else old_pid,
        path_search,
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
        handler = HANDLER_VALUES[d["handler"]]
        group_exit_signo = signal_number(group_exit) if group_exit else 0
    else:
        stage, handler, group_exit_signo = SIGNAL_GENERATE, 0, 0
        result = d["result"]
        # a result with no name is written as its number (words.result_name)
        result = RESULT_VALUES[result] if result in RESULT_VALUES else int(result)
        group = d["group"]
        if type(group) is not bool:
            raise ValueError("group must be a boolean")
    target_comm = as_bytes(d["target_comm"])
    return SignalEvent(*common, stage, signo, code, target_pid, target_comm, result, group, handler, group_exit_signo)


def _summary(d: dict[str, Any]) -> SignalSummaryEvent:
    common = _common(d)
    signo, target_pid, count, first, last = d["signo"], d["target_pid"], d["count"], d["first_ns"], d["last_ns"]
    if not _ints(signo, target_pid, count, first, last):
        raise ValueError("signal summary fields must be integers")
    stage = SIGNAL_DELIVER if d["stage"] == "deliver" else SIGNAL_GENERATE
    reason = _FOLD_REASON_VALUES[d["reason"]]
    target_comm = as_bytes(d["target_comm"])
    return SignalSummaryEvent(*common, reason, stage, signo, target_pid, target_comm, count, first, last)


def _reap(d: dict[str, Any]) -> ReapEvent:
    common = _common(d)
    reaped_pid, status = d["reaped_pid"], d["status"]
    if not _ints(reaped_pid, status):
        raise ValueError("reap fields must be integers")
    return ReapEvent(*common, reaped_pid, wait_status(status))


_FROM_DICT = {"fork": _fork, "exec": _exec, "exit": _exit, "signal": _signal, "reap": _reap, SUMMARY_TYPE: _summary}


def event_from_dict(d: dict[str, Any]) -> Event:
    """The inverse of event_json: `event_json(event_from_dict(json.loads(line)), clock) == line`
    for every line event_json wrote with the same clock. Strict about
    types, since it reads files anyone may have written: raises KeyError,
    TypeError or ValueError on objects that are not such events."""
    try:
        convert = _FROM_DICT[d["type"]]
    except KeyError:
        raise ValueError(f"unknown event type {d.get('type')!r}") from None
    return convert(d)
