"""The reference encoder of the JSON lines: each event kind's object spelled out
as a plain dict, field by field, the slow and obvious way. tests/test_jsonl.py
checks that proctrace's fast writer (jsonl.event_json) writes exactly
json.dumps of these objects, and reads them back, so the schema in the README
has one readable statement here that the fast code cannot drift from."""

from __future__ import annotations

from typing import Any

from proctrace.model.clock import Clock
from proctrace.model.context import Credentials
from proctrace.model.events import (
    SIGNAL_DELIVER,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
    as_text,
    errno_name,
    signal_name,
)

HANDLERS = {0: "default", 1: "ignore"}  # any other sa_handler value is a handler's address: "handler"
REASONS = {1: "ptrace_stop", 2: "rate_limit"}
RESULTS = {0: "delivered", 1: "ignored", 2: "already_pending", 3: "overflow_fail", 4: "lose_info"}


def _status(st: WaitStatus) -> dict[str, Any]:
    return {"exit_code": st.exit_code, "signal": st.signal, "core_dumped": st.core_dumped, "status": st.raw}


def _creds(creds: Credentials | None) -> dict[str, int] | None:
    if creds is None:
        return None
    return {
        "uid": creds.uid,
        "euid": creds.euid,
        "suid": creds.suid,
        "fsuid": creds.fsuid,
        "gid": creds.gid,
        "egid": creds.egid,
        "sgid": creds.sgid,
        "fsgid": creds.fsgid,
        "cap_effective": creds.cap_effective,
    }


def event_dict(ev: Event, clock: Clock) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "signal_summary" if isinstance(ev, SignalSummaryEvent) else ev.kind,
        "ts_ns": ev.ts_ns,
        "time": clock.iso(ev.ts_ns),
        "pid": ev.pid,
        "tgid": ev.tgid,
        "ppid": ev.ppid,
        "comm": as_text(ev.comm),
        "uid": ev.uid,
        "start_ns": ev.start_ns,
        "cpu": ev.cpu,
        "cgroup_id": ev.cgroup_id,
    }
    if isinstance(ev, ExecEvent):
        d["filename"] = as_text(ev.filename)
        d["argv"] = [as_text(a) for a in ev.argv]
        d["argv_truncated"] = ev.argv_truncated
        d["filename_truncated"] = ev.filename_truncated
        d["argv_unreadable"] = ev.argv_unreadable
        d["errno"] = errno_name(ev.errno) if ev.errno else None
        d["old_pid"] = ev.old_pid if ev.old_pid != ev.pid else None
        if ev.context is not None:
            # The context's field names have one home, the model; path_search stays last.
            d.update(ev.context.to_dict())
        d["path_search"] = ev.path_search
    elif isinstance(ev, ForkEvent):
        d["child_pid"] = ev.child_pid
        d["child_tgid"] = ev.child_tgid
        d["child_ppid"] = ev.child_ppid
        d["thread"] = ev.thread
        d["clone_flags"] = ev.clone_flags
    elif isinstance(ev, ExitEvent):
        d.update(_status(ev.status))
        d["process_exit"] = ev.process_exit
        d["lifetime_ns"] = ev.lifetime_ns
        if ev.process_exit:
            d["oom_killed"] = ev.oom_killed
            d["oom_memcg"] = None if ev.oom_memcg is None else as_text(ev.oom_memcg)
            d["killed_by_pid"] = ev.killed_by_pid
            d["killed_by_comm"] = None if ev.killed_by_comm is None else as_text(ev.killed_by_comm)
        if ev.usage is not None:
            d.update(ev.usage.to_dict())
    elif isinstance(ev, SignalEvent):
        d["signal"] = ev.signal
        d["signo"] = ev.signo
        d["stage"] = "deliver" if ev.stage == SIGNAL_DELIVER else "generate"
        d["target_pid"] = ev.target_pid
        d["target_comm"] = as_text(ev.target_comm)
        d["sender_pid"] = ev.sender_pid
        d["code"] = ev.code
        if ev.stage == SIGNAL_DELIVER:
            d["handler"] = HANDLERS.get(ev.handler, "handler")
            d["group_exit_signal"] = signal_name(ev.group_exit_signo) if ev.group_exit_signo else None
        else:
            d["result"] = RESULTS.get(ev.result, str(ev.result))
            d["group"] = ev.group
    elif isinstance(ev, SignalSummaryEvent):
        d["reason"] = REASONS[ev.reason]
        d["signal"] = ev.signal
        d["signo"] = ev.signo
        d["stage"] = "deliver" if ev.stage == SIGNAL_DELIVER else "generate"
        d["target_pid"] = ev.target_pid
        d["target_comm"] = as_text(ev.target_comm)
        d["sender_pid"] = None if ev.stage == SIGNAL_DELIVER else ev.tgid
        d["count"] = ev.count
        d["first_ns"] = ev.first_ns
        d["last_ns"] = ev.last_ns
    elif isinstance(ev, ReapEvent):
        d["reaped_pid"] = ev.reaped_pid
        d.update(_status(ev.status))
        d["autoreaped"] = ev.autoreaped
    elif isinstance(ev, CredEvent):
        d["syscall"] = ev.syscall
        d["before"] = _creds(ev.before)
        d["after"] = _creds(ev.after)
        d["groups_before"] = list(ev.groups_before)
        d["groups_before_count"] = ev.groups_before_count
        d["groups_after"] = list(ev.groups_after)
        d["groups_after_count"] = ev.groups_after_count
        before, after = ev.before, ev.after
        gained = before is not None and after is not None
        gained = gained and (
            bool(after.cap_effective & ~before.cap_effective)
            or (after.euid == 0 and before.euid != 0)
            or (after.egid == 0 and before.egid != 0)
        )
        d["privilege_gain"] = gained
    elif isinstance(ev, CgroupEvent):
        d["action"] = ev.action
        d["target_id"] = ev.target_id
        d["path"] = as_text(ev.path)
    return d
