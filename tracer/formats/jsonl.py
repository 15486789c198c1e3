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
import operator
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
from proctrace.model.context import CRED_FIELDS, Credentials, ProcessContext, creds_from_dict, creds_to_dict
from proctrace.model.events import (
    CGROUP_MKDIR,
    CGROUP_RENAME,
    CGROUP_RMDIR,
    CLONE_THREAD,
    FOLD_REASONS,
    LIFECYCLE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    USAGE_FIELDS,
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
    WaitStatus,
    as_bytes,
    as_text,
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
        f'"pid":{ev.pid},"tgid":{ev.tgid},"ppid":{ev.ppid},"comm":{_q(ev.comm)},"uid":{ev.uid},"start_ns":{ev.start_ns},"cpu":{ev.cpu},'
        f'"cgroup_id":{ev.cgroup_id}'
    )


def _exec_json(ev: ExecEvent, clock: Clock) -> str:
    err = _quote(errno_name(ev.errno)) if ev.errno else "null"
    old_pid = ev.old_pid if ev.old_pid != ev.pid else "null"
    return (
        f'{_head(ev, clock)},"filename":{_q(ev.filename)},"argv":[{",".join([_q(a) for a in ev.argv])}],'
        f'"argv_truncated":{_b(ev.argv_truncated)},"filename_truncated":{_b(ev.filename_truncated)},'
        f'"argv_unreadable":{_b(ev.argv_unreadable)},"errno":{err},"old_pid":{old_pid},'
        f'{"" if ev.context is None else _context_json(ev.context)}"path_search":{_b(ev.path_search)}}}'
    )


def _n(value: int | None) -> int | str:
    return "null" if value is None else value


_cred_texts: dict[Credentials, str] = {}
_before_texts: dict[Credentials, str] = {}
_cgroup_texts: dict[bytes, str] = {}


def _creds_fields(creds: Credentials | None) -> str:
    """The flat credential fields of a context, remembered: a session has few users."""
    if creds is None:
        return _NO_CREDS
    text = _cred_texts.get(creds)
    if text is None:
        text = remember(_cred_texts, creds, _encode(creds_to_dict(creds))[1:-1].split(",", 1)[1])  # without uid
    return text


_NO_CREDS = ",".join(f'"{name}":null' for name in CRED_FIELDS[1:])


def _cgroup_fields(cgroup: bytes | None, ctx: ProcessContext) -> str:
    """cgroup, unit and container_id, remembered by path: the rules that find
    the unit and the container (tracer/model/cgroups.py) cost more than the rest."""
    if cgroup is None:
        return '"cgroup":null,"unit":null,"container_id":null'
    text = _cgroup_texts.get(cgroup)
    if text is None:
        unit, container = ctx.unit, ctx.container_id
        text = remember(
            _cgroup_texts,
            cgroup,
            f'"cgroup":{_q(cgroup)},"unit":{"null" if unit is None else _q(unit)},'
            f'"container_id":{"null" if container is None else _q(container)}',
        )
    return text


def _context_json(ctx: ProcessContext) -> str:
    """The fields of ProcessContext.to_dict, their one definition, as JSON text
    with a trailing comma. Written like the events, not with to_dict and the
    encoder (about 11 us an exec more): tests/test_jsonl.py checks that the two
    give the same text, to the byte, for arbitrary contexts."""
    before = ctx.creds_before
    if before is None:
        before_text = "null"
    else:
        before_text = _before_texts.get(before) or remember(_before_texts, before, _encode(creds_to_dict(before)))
    cwd = ctx.cwd
    tty = ctx.tty
    text = (
        f'"cwd":{"null" if cwd is None else _q(cwd)},"cwd_truncated":{_b(ctx.cwd_truncated)},'
        f'"cwd_deleted":{_b(ctx.cwd_deleted)},"exe_dev":{_n(ctx.exe_dev)},"exe_ino":{_n(ctx.exe_ino)},'
        f'"exe_memfd":{_b(ctx.exe_memfd)},"exe_deleted":{_b(ctx.exe_deleted)},{_creds_fields(ctx.creds)},'
        f'"creds_before":{before_text},"privilege_gain":{_b(ctx.privilege_gain)},'
        f'"tty":{"null" if tty is None else _quote(tty)},"sid":{_n(ctx.sid)},"login_uid":{_n(ctx.login_uid)},'
        f'"login_session":{_n(ctx.login_session)},"pidns":{_n(ctx.pidns)},"ns_pid":{_n(ctx.ns_pid)},'
        f'"mntns":{_n(ctx.mntns)},{_cgroup_fields(ctx.cgroup, ctx)},'
    )
    if ctx.env is not None:  # only with --env: rare enough for the encoder
        env = _encode({as_text(k): as_text(v) for k, v in ctx.env.items()})
        text += f'"env":{env},"env_truncated":{_b(ctx.env_truncated)},'
    return text


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

# A process exit's usage fields, named once (USAGE_FIELDS, which
# ResourceUsage.to_dict also follows), written into one format: through the
# encoder, as a dict, they were more than half of an exit's line (~5 us).
_usage_values = operator.attrgetter(*USAGE_FIELDS)
_USAGE_FORMAT = ",".join(f"{_quote(name)}:%s" for name in USAGE_FIELDS)


def _exit_json(ev: ExitEvent, clock: Clock) -> str:
    text = (
        f'{_head(ev, clock)},{_status_json(ev.status)},"process_exit":{_b(ev.process_exit)},'
        f'"lifetime_ns":{ev.lifetime_ns}'
    )
    if not ev.process_exit:
        return text + "}"
    # What ended it: on every process exit.
    killer, memcg = ev.killed_by_comm, ev.oom_memcg
    text += (
        f',"oom_killed":{_b(ev.oom_killed)},"oom_memcg":{"null" if memcg is None else _q(memcg)},'
        f'"killed_by_pid":{"null" if ev.killed_by_pid is None else ev.killed_by_pid},'
        f'"killed_by_comm":{"null" if killer is None else _q(killer)}'
    )
    u = ev.usage
    if u is None:
        return text + "}"
    return f"{text},{_USAGE_FORMAT % tuple(map(_n, _usage_values(u)))}}}"


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
    return (
        f'{_head(ev, clock)},"reaped_pid":{ev.reaped_pid},{_status_json(ev.status)},"autoreaped":{_b(ev.autoreaped)}}}'
    )


def _creds_json(creds: Any) -> str:
    return "null" if creds is None else _encode(creds_to_dict(creds))


def _cred_json(ev: CredEvent, clock: Clock) -> str:
    return (
        f'{_head(ev, clock)},"syscall":{_quote(ev.syscall)},'
        f'"before":{_creds_json(ev.before)},"after":{_creds_json(ev.after)},'
        f'"groups_before":[{",".join(map(str, ev.groups_before))}],"groups_before_count":{ev.groups_before_count},'
        f'"groups_after":[{",".join(map(str, ev.groups_after))}],"groups_after_count":{ev.groups_after_count},'
        f'"privilege_gain":{_b(ev.privilege_gain)}}}'
    )


def _cgroup_json(ev: CgroupEvent, clock: Clock) -> str:
    return f'{_head(ev, clock)},"action":{_quote(ev.action)},"target_id":{ev.target_id},"path":{_q(ev.path)}}}'


_JSON_BY_TYPE: dict[type, Any] = {
    ExecEvent: _exec_json,
    ForkEvent: _fork_json,
    ExitEvent: _exit_json,
    SignalEvent: _signal_json,
    SignalSummaryEvent: _summary_json,
    ReapEvent: _reap_json,
    CredEvent: _cred_json,
    CgroupEvent: _cgroup_json,
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


def _cgroup_id(d: dict[str, Any]) -> int:
    """The event's cgroup id; 0 (unknown) in lines written before events had one."""
    value = d.get("cgroup_id", 0)
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise ValueError("cgroup_id must be an integer of 64 bits")
    return value


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
    return ForkEvent(*common, child_pid, child_tgid, child_ppid, flags, cgroup_id=_cgroup_id(d))


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
    context = ProcessContext.from_dict(d)  # None in lines from before contexts were read
    if context is not None and err is not None:
        raise ValueError("a failed exec has no context")
    return ExecEvent(
        *common,
        as_bytes(d["filename"]),
        list(map(as_bytes, argv)),
        *flags,
        0 if err is None else errno_number(err),
        common[1] if old_pid is None else old_pid,
        path_search,
        context,
        cgroup_id=_cgroup_id(d),
    )


def _exit(d: dict[str, Any]) -> ExitEvent:
    common = _common(d)
    status, process_exit, lifetime = d["status"], d["process_exit"], d["lifetime_ns"]
    if not (_ints(status, lifetime) and type(process_exit) is bool):
        raise ValueError("exit fields have the wrong types")
    ts, start = common[0], common[6]
    # Only the start the lifetime was measured from is recorded.
    return ExitEvent(
        *common,
        wait_status(status),
        status,
        process_exit,
        start if process_exit else ts - lifetime,
        ResourceUsage.from_dict(d),
        *_death(d),
        cgroup_id=_cgroup_id(d),
    )


def _death(d: dict[str, Any]) -> tuple[bool, bytes | None, int | None, bytes | None]:
    """oom_killed, oom_memcg, killed_by_pid, killed_by_comm; absent in recordings made before them."""
    oom, memcg = d.get("oom_killed", False), d.get("oom_memcg")
    pid, comm = d.get("killed_by_pid"), d.get("killed_by_comm")
    if type(oom) is not bool or not (pid is None or type(pid) is int) or not (comm is None or type(comm) is str):
        raise ValueError("oom_killed must be a boolean, killed_by_pid an integer, killed_by_comm a string")
    if not (memcg is None or (type(memcg) is str and oom)):
        raise ValueError("oom_memcg must be a string, on an exit the OOM killer caused")
    if (pid is None) != (comm is None) or (pid is not None and not wait_status(d["status"]).signal):
        raise ValueError("killed_by_pid and killed_by_comm go together, on an exit by a signal")
    return oom, None if memcg is None else as_bytes(memcg), pid, None if comm is None else as_bytes(comm)


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
    return SignalEvent(
        *common,
        stage,
        signo,
        code,
        target_pid,
        target_comm,
        result,
        group,
        handler,
        group_exit_signo,
        cgroup_id=_cgroup_id(d),
    )


def _summary(d: dict[str, Any]) -> SignalSummaryEvent:
    common = _common(d)
    signo, target_pid, count, first, last = d["signo"], d["target_pid"], d["count"], d["first_ns"], d["last_ns"]
    if not _ints(signo, target_pid, count, first, last):
        raise ValueError("signal summary fields must be integers")
    stage = SIGNAL_DELIVER if d["stage"] == "deliver" else SIGNAL_GENERATE
    reason = _FOLD_REASON_VALUES[d["reason"]]
    target_comm = as_bytes(d["target_comm"])
    return SignalSummaryEvent(
        *common, reason, stage, signo, target_pid, target_comm, count, first, last, cgroup_id=_cgroup_id(d)
    )


def _reap(d: dict[str, Any]) -> ReapEvent:
    common = _common(d)
    reaped_pid, status, auto = d["reaped_pid"], d["status"], d.get("autoreaped", False)
    if not _ints(reaped_pid, status) or type(auto) is not bool:
        raise ValueError("reap fields must be integers, autoreaped a boolean")
    return ReapEvent(*common, reaped_pid, wait_status(status), auto, cgroup_id=_cgroup_id(d))


def _groups(d: dict[str, Any], name: str) -> tuple[tuple[int, ...], int]:
    groups, count = d[name], d[name + "_count"]
    if type(groups) is not list or not _ints(count, *groups) or not len(groups) <= count:
        raise ValueError(f"{name} must be a list of integers, {name}_count an integer at least its length")
    return tuple(groups), count


def _cred(d: dict[str, Any]) -> CredEvent:
    common = _common(d)
    syscall, before, after = d["syscall"], d["before"], d["after"]
    if type(syscall) is not str:
        raise ValueError("syscall must be a string")
    groups_before, before_count = _groups(d, "groups_before")
    groups_after, after_count = _groups(d, "groups_after")
    return CredEvent(
        *common,
        syscall,
        None if before is None else creds_from_dict(before),
        None if after is None else creds_from_dict(after),
        groups_before,
        groups_after,
        before_count,
        after_count,
        cgroup_id=_cgroup_id(d),
    )


_CGROUP_ACTIONS = frozenset((CGROUP_MKDIR, CGROUP_RMDIR, CGROUP_RENAME))


def _cgroup(d: dict[str, Any]) -> CgroupEvent:
    common = _common(d)
    action, target_id = d["action"], d["target_id"]
    if action not in _CGROUP_ACTIONS or type(target_id) is not int:
        raise ValueError("action must be mkdir, rmdir or rename, target_id an integer")
    return CgroupEvent(*common, action, target_id, as_bytes(d["path"]), cgroup_id=_cgroup_id(d))


_FROM_DICT = {
    "fork": _fork,
    "exec": _exec,
    "exit": _exit,
    "signal": _signal,
    "reap": _reap,
    "cred": _cred,
    "cgroup": _cgroup,
    SUMMARY_TYPE: _summary,
}


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
