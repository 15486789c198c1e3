"""How outcomes, signals, signal handlers, wait statuses, credentials and cgroups are said.

Every output asks this module, so that the stream, the views, the JSON forms
and the Chrome trace say one fact the same way: as words for people ("killed
by SIGSEGV (core dumped)", "SIGKILL delivered (group exit by SIGTERM)") and as
fields for programs ("handler": "ignore", "exit_code"/"signal"/"core_dumped"/
"status"). The names of signals and errnos themselves, and the wording of a
wait status (WaitStatus.describe, which the process table's failure counts use
too), belong to the event model (tracer/model/events.py).
"""

from __future__ import annotations

import pwd
import signal as signal_mod
from collections.abc import Mapping
from typing import Any

from proctrace.formats.text import TRUNCATED, escape_bytes, format_bytes, format_duration, format_kb
from proctrace.model.context import ALL_CAPABILITIES, Credentials, capability_names, describe_capabilities
from proctrace.model.events import (
    CGROUP_MKDIR,
    CGROUP_RENAME,
    CGROUP_RMDIR,
    EVENT_CLASSES,
    FOLD_PTRACE,
    FOLD_REASONS,
    LIFECYCLE,
    SIGNAL_DELIVER,
    SIGNAL_RESULTS,
    SIGNALS,
    CredEvent,
    ResourceUsage,
    SignalSummaryEvent,
    WaitStatus,
    as_text,
    signal_name,
)
from proctrace.model.memo import remember
from proctrace.model.process_table import FoldedRecord, GroupKey, Killing, Process, group_key

SIGKILL = int(signal_mod.SIGKILL)

# ---------------------------------------------------------------------------
# Signal handlers

HANDLER_NAMES: dict[int, str] = {0: "default", 1: "ignore"}
"""A delivered signal's sa_handler value (SIG_DFL, SIG_IGN) by its JSON name;
look up with `.get(handler, OTHER_HANDLER)`."""

OTHER_HANDLER = "handler"
"""The JSON name of any other sa_handler value: a handler's address, which is not kept."""

HANDLER_VALUES: dict[str, int] = {**{name: value for value, name in HANDLER_NAMES.items()}, OTHER_HANDLER: 2}
"""The inverse of the names, for reading JSON back: "handler" reads back as 2,
the smallest value that means a handler (its real address was not kept)."""


def handler_name(handler: int) -> str:
    """ "default", "ignore" or "handler", as the JSON forms name a disposition."""
    return HANDLER_NAMES.get(handler, OTHER_HANDLER)


# ---------------------------------------------------------------------------
# Signals


def group_exit_cause(signo: int, group_exit_signo: int) -> int:
    """The fatal signal a delivered SIGKILL stands for, or 0 when it stands for itself.

    When a process dies of a fatal signal the kernel sends every one of its
    threads SIGKILL; the event of that delivery carries the original signal."""
    return group_exit_signo if signo == SIGKILL else 0


_deliveries: dict[tuple[int, int, int, bool], str] = {}


def delivered_words(signo: int, handler: int, group_exit_signo: int, *, terse: bool) -> str:
    """How a delivery is said: "SIGTERM delivered, default action", "SIGUSR1
    delivered to its handler", "SIGKILL delivered (group exit by SIGTERM)".

    `terse` is the stream's form, which says "to handler", puts the cause of a
    group-exit SIGKILL before "delivered" and names no cause when it was SIGKILL
    itself; the timeline's sentences read as prose. Both as they always were.
    Remembered, since the stream says it for every delivery: a handler's address
    only counts as "a handler", so all addresses share one entry."""
    key = (signo, handler if handler < 2 else 2, group_exit_signo, terse)
    return _deliveries.get(key) or remember(_deliveries, key, _delivery(signo, handler, group_exit_signo, terse))


def _delivery(signo: int, handler: int, group_exit_signo: int, terse: bool) -> str:
    cause = group_exit_cause(signo, group_exit_signo)
    if cause:
        if not terse:
            return f"SIGKILL delivered (group exit by {signal_name(cause)})"
        if cause == SIGKILL:
            return "SIGKILL delivered (group exit)"
        return f"SIGKILL (group exit by {signal_name(cause)}) delivered"
    name = signal_name(signo)
    if handler == 0:
        return f"{name} delivered, default action"
    if handler == 1:
        return f"{name} delivered, ignored"
    return f"{name} delivered to handler" if terse else f"{name} delivered to its handler"


def delivered_title(signo: int, group_exit_signo: int) -> str:
    """A delivery in a few words, without its disposition (for a name whose
    details are beside it): "SIGTERM delivered", "SIGKILL delivered (group exit by SIGTERM)"."""
    if group_exit_cause(signo, group_exit_signo):
        return delivered_words(signo, 0, group_exit_signo, terse=False)
    return f"{signal_name(signo)} delivered"


def sent_words(signo: int, sender: str | None) -> str:
    """A generated signal and who sent it: "SIGTERM from 1234 (sh)", "SIGALRM from the kernel"."""
    return f"{signal_name(signo)} from {'the kernel' if sender is None else sender}"


def result_name(result: int) -> str:
    """signal_generate's result as the JSON forms name it: "already_pending", or its number."""
    return SIGNAL_RESULTS.get(result, str(result))


RESULT_VALUES: dict[str, int] = {name: value for value, name in SIGNAL_RESULTS.items()}
"""The inverse of result_name's names, for reading JSON back."""


def result_words(result: int) -> str:
    """signal_generate's result for people: "already pending", or "result 7"."""
    return SIGNAL_RESULTS.get(result, f"result {result}").replace("_", " ")


# A count of folded signals: one period's report, or a process's total of them.
_Folded = SignalSummaryEvent | FoldedRecord


def summary_words(ev: _Folded) -> str:
    """Signals the kernel counted instead of sending: "20,118 ptrace stops -> tracer
    1234 (strace) in 998.1ms", "SIGUSR1 -> 77 (sleep): 52,000 more beyond the rate
    limit in 1.0s", "SIGUSR1 delivered: 52,000 more beyond the rate limit in 1.0s"."""
    span = format_duration(max(0, ev.last_ns - ev.first_ns))
    target = f"{ev.target_pid} ({escape_bytes(ev.target_comm)})" if ev.target_comm else f"{ev.target_pid}"
    if ev.reason == FOLD_PTRACE:
        return f"{ev.count:,} ptrace stops -> tracer {target} in {span} (SIGCHLD, folded)"
    if ev.stage == SIGNAL_DELIVER:
        return f"{signal_name(ev.signo)} delivered: {ev.count:,} more beyond the rate limit in {span}"
    return f"{signal_name(ev.signo)} -> {target}: {ev.count:,} more beyond the rate limit in {span}"


def folded_record_words(folded: _Folded) -> str:
    """A process's total of folded signals in its timeline: the summary's words,
    with the span over its whole life and a note that they were not streamed."""
    return summary_words(folded) + ", counted in the kernel"


def folded_fields(folded: _Folded) -> dict[str, Any]:
    """A process's total of folded signals as the timeline's JSON says it, named as in the JSON lines."""
    return {
        "reason": FOLD_REASONS[folded.reason],
        "stage": "deliver" if folded.stage == SIGNAL_DELIVER else "generate",
        "signal": signal_name(folded.signo),
        "target_pid": folded.target_pid,
        "target_comm": as_text(folded.target_comm),
        "count": folded.count,
        "first_ns": folded.first_ns,
        "last_ns": folded.last_ns,
    }


def folded_words(ptrace_stops: int, suppressed: int, deliveries: int) -> str:
    """The summary's line on what the kernel counted instead of sending: signals
    generated (ptrace stops, and others beyond the rate limit) and their deliveries."""
    return (
        f"Counted in the kernel, not streamed: {ptrace_stops:,} ptrace stops (SIGCHLD to a tracer), "
        f"{suppressed:,} signals beyond the rate limit, {deliveries:,} deliveries of either."
    )


# ---------------------------------------------------------------------------
# Losses

_CLASS_WORDS = {LIFECYCLE: "lifecycle events", SIGNALS: "signal events"}
# The option that sizes each class's buffer: what to try after a loss.
_CLASS_BUFFER_OPTION = {LIFECYCLE: "--buffer-size", SIGNALS: "--signal-buffer-size"}


def lost_words(new: int, total: int, event_class: str) -> str:
    """The stream's line for a report of lost events of one class."""
    what = _CLASS_WORDS.get(event_class, f"{event_class} events")
    option = _CLASS_BUFFER_OPTION.get(event_class, "--buffer-size")
    return f"{new} {what} lost (kernel buffer full; {total} in all): try a larger {option}"


def lost_summary_words(lost_by_class: Mapping[str, int]) -> str:
    """The summary's line on losses: each class, and what a lifecycle loss means for the views."""
    parts = [f"{lost_by_class.get(c, 0)} {_CLASS_WORDS[c]}" for c in EVENT_CLASSES]
    text = f"Events lost: {sum(lost_by_class.values())} ({', '.join(parts)})"
    if lost_by_class.get(LIFECYCLE, 0):
        text += "; processes alive then are marked incomplete"
    return text + "."


# ---------------------------------------------------------------------------
# Outcomes and statuses


def usage_words(usage: ResourceUsage) -> str:
    """What a process used, as the tree says it: "cpu 390.2ms, peak 129.0 MiB"."""
    return f"cpu {format_duration(usage.cpu_user_ns + usage.cpu_sys_ns)}, peak {format_kb(usage.max_rss_kb)}"


def usage_detail_words(usage: ResourceUsage) -> str:
    """Everything a process used, as the timeline says it at its exit."""
    text = (
        f"used cpu {format_duration(usage.cpu_user_ns + usage.cpu_sys_ns)} "
        f"({format_duration(usage.cpu_user_ns)} user, {format_duration(usage.cpu_sys_ns)} system), "
        f"peak RSS {format_kb(usage.max_rss_kb)}, page faults {usage.minflt} minor + {usage.majflt} major, "
        f"context switches {usage.nvcsw} voluntary + {usage.nivcsw} involuntary"
    )
    if usage.read_bytes is None or usage.write_bytes is None:
        return text + ", storage I/O not counted by this kernel"
    return text + f", read {format_bytes(usage.read_bytes)}, wrote {format_bytes(usage.write_bytes)} (storage)"


def killer_words(killing: Killing) -> str:
    """Who killed a process: "4242 (systemd)", or "the OOM killer"."""
    if killing.killer is None:
        return "the OOM killer"
    return f"{killing.killer} ({escape_bytes(killing.killer_comm or b'')})"


def process_outcome(rec: Process) -> tuple[str, str]:
    """outcome() of a process in a view, with what ended it."""
    return outcome(rec.status, rec.oom_killed, rec.killed_by_pid, rec.killed_by_comm, rec.oom_memcg)


def outcome(
    status: WaitStatus | None,
    oom_killed: bool = False,
    killed_by_pid: int | None = None,
    killed_by_comm: bytes | None = None,
    oom_memcg: bytes | None = None,
) -> tuple[str, str]:
    """(words, colour role) of how a process or thread ended: ("exit 0",
    "exit_ok"), ("killed by SIGSEGV (core dumped)", "exit_bad"); ("end not seen",
    "other") when no status is known. With what ended it, where known: "killed
    by the OOM killer (SIGKILL)", "killed by the OOM killer in memory cgroup
    /build (SIGKILL)", "killed by SIGTERM from 4242 (systemd)"."""
    if status is None:
        return "end not seen", "other"
    if status.signal is not None:
        if oom_killed:
            where = "" if oom_memcg is None else f" in memory cgroup {escape_bytes(oom_memcg)}"
            return f"killed by the OOM killer{where} ({status.signal})", "exit_bad"
        if killed_by_pid is not None:
            sender = f"{killed_by_pid} ({escape_bytes(killed_by_comm or b'')})"
            return f"{status.describe().replace(status.signal, f'{status.signal} from {sender}', 1)}", "exit_bad"
    return status.describe(), "exit_ok" if status.raw == 0 else "exit_bad"


def status_fields(status: WaitStatus | None) -> dict[str, Any]:
    """The fields a wait status adds to a JSON object, in this order: exit_code
    and signal (one of them null), core_dumped and the raw status; all null
    (core_dumped false) when no status is known."""
    if status is None:
        return {"exit_code": None, "signal": None, "core_dumped": False, "status": None}
    return {
        "exit_code": status.exit_code,
        "signal": status.signal,
        "core_dumped": status.core_dumped,
        "status": status.raw,
    }


# ---------------------------------------------------------------------------
# Execs


def exec_notes(argv_unreadable: bool, argv_truncated: bool, from_thread: int, path_misses: int = 0) -> list[str]:
    """What follows an exec's arguments: that they could not be read, that the
    kernel side cut them, that a thread other than the leader called exec, how
    many PATH misses it took to find the file ("(after 10 PATH misses)")."""
    notes = []
    if argv_unreadable:
        notes.append("(argv unreadable)")
    if argv_truncated:
        notes.append(TRUNCATED)
    if from_thread:
        notes.append(f"(from thread {from_thread})")
    if path_misses:
        notes.append(f"(after {path_misses_words(path_misses)})")
    return notes


def path_misses_words(count: int) -> str:
    """ "1 PATH miss", "10 PATH misses": the failed attempts of PATH searches
    (tracer/model/path_search.py), which the outputs fold into their execs."""
    return f"{count} PATH miss" if count == 1 else f"{count} PATH misses"


# ---------------------------------------------------------------------------
# Credentials, cgroups and containers

CONTAINER_SHORT = 12
"""Hex digits of a container id in text, as `docker ps` shows it."""

_user_names: dict[int, str] = {}


def user_name(uid: int) -> str:
    """A user by name where this machine's user database has it ("root"), else
    its number. Remembered: a lookup may ask NSS, and a session has few users.
    (A recording replayed elsewhere is named by the replaying machine.)"""
    name = _user_names.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            name = str(uid)
        remember(_user_names, uid, name)
    return name


CAPABILITIES_LEFT_OUT_MAX = 8
"""A set that lacks at most this many of the known capabilities is said by what it lacks."""


def capability_set_words(mask: int) -> str:
    """A capability set for people: "none", "all", "cap_kill,cap_net_raw", or,
    for a set that holds nearly all (root under a bounding set, say), "all but
    cap_sys_resource": forty names say less than the one left out."""
    missing = ALL_CAPABILITIES & ~mask
    if 0 < missing.bit_count() <= CAPABILITIES_LEFT_OUT_MAX < (mask & ALL_CAPABILITIES).bit_count():
        extra = mask & ~ALL_CAPABILITIES  # bits newer than the names known here
        text = "all but " + ",".join(capability_names(missing))
        return text + (f" and {','.join(capability_names(extra))}" if extra else "")
    return describe_capabilities(mask)


def capabilities_gained_words(mask: int) -> str:
    """Capabilities newly held: "+cap_net_raw,cap_sys_admin", "+all capabilities"."""
    described = capability_set_words(mask)
    return "+all capabilities" if described == "all" else "+" + described


def privilege_gain_words(before: Credentials, after: Credentials) -> str:
    """What a gain of privilege changed: "privilege gain: euid 1000->0, +all
    capabilities" (an effective id that changed, the capabilities gained)."""
    parts = []
    if after.euid != before.euid:
        parts.append(f"euid {before.euid}->{after.euid}")
    if after.egid != before.egid:
        parts.append(f"egid {before.egid}->{after.egid}")
    gained = after.cap_effective & ~before.cap_effective
    if gained:
        parts.append(capabilities_gained_words(gained))
    return "privilege gain: " + ", ".join(parts)


_ID_FIELDS = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")


def credentials_change_words(before: Credentials, after: Credentials) -> list[str]:
    """The ids and capabilities that changed, ids with the same change said
    once: ["uid,euid,suid,fsuid 0->1000", "caps all->none"]."""
    changes: dict[tuple[int, int], list[str]] = {}
    for name in _ID_FIELDS:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.setdefault((old, new), []).append(name)
    parts = [f"{','.join(names)} {old}->{new}" for (old, new), names in changes.items()]
    if after.cap_effective != before.cap_effective:
        old_caps = capability_set_words(before.cap_effective)
        parts.append(f"caps {old_caps}->{capability_set_words(after.cap_effective)}")
    return parts


def _groups_words(groups: tuple[int, ...], count: int) -> str:
    shown = ",".join(map(str, groups)) if groups else "none"
    return shown + (f"…(+{count - len(groups)})" if count > len(groups) else "")


def cred_words(ev: CredEvent) -> str:
    """A change of credentials after exec: "setresuid: uid,euid,suid 0->1000,
    caps all->none", "setgroups: groups 0,27->1000", with "(privilege gain:
    ...)" when it gained privilege."""
    parts: list[str] = []
    if ev.before is not None and ev.after is not None:
        parts = credentials_change_words(ev.before, ev.after)
    if ev.groups_before != ev.groups_after or ev.groups_before_count != ev.groups_after_count:
        old = _groups_words(ev.groups_before, ev.groups_before_count)
        parts.append(f"groups {old}->{_groups_words(ev.groups_after, ev.groups_after_count)}")
    text = f"{ev.syscall}: {', '.join(parts) if parts else 'no change seen'}"
    if ev.privilege_gain and ev.before is not None and ev.after is not None:
        text += f" ({privilege_gain_words(ev.before, ev.after)})"
    return text


_CGROUP_ACTION_WORDS = {CGROUP_MKDIR: "made", CGROUP_RMDIR: "removed", CGROUP_RENAME: "renamed to"}


def cgroup_words(action: str, path: bytes, target_id: int) -> str:
    """A cgroup event: "made /system.slice/x.service (id 1234)", "removed ...", "renamed to ..."."""
    return f"{_CGROUP_ACTION_WORDS.get(action, action)} {escape_bytes(path)} (id {target_id})"


def group_words(key: GroupKey | None) -> str | None:
    """Where a process runs, said short: "container 3f4e5a6b7c8d" (the id cut as
    docker cuts it) or its systemd unit ("nginx.service"); None outside both or
    when unknown. What the summary and the Chrome trace group processes by."""
    if key is None:
        return None
    kind, name = key
    if kind == "container":
        return "container " + name[:CONTAINER_SHORT].decode("ascii")
    return escape_bytes(name)


def group_of(cgroup: bytes | None) -> str | None:
    """group_words of a cgroup path (tracer/model/cgroups.py finds its container or unit)."""
    return group_words(group_key(cgroup))
