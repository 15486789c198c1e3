"""The session as a Chrome Trace Event file, for Perfetto UI and chrome://tracing.

This module owns `--export-trace`: how the process table (tracer/model/process_table.py)
becomes a timeline in the Trace Event Format's JSON Object form
({"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}). The
facts are those the views show (tracer/formats/views.py); only their shape differs.

What shapes it:

* One track per process. The format has processes and threads but no nesting
  of processes, so parentage goes into the track's name ("sh [1234] ← 1200")
  and the tracks are ordered by a depth-first walk of the process tree through
  process_sort_index: each process right after its parent, siblings by start.
* Trace pids must be unique per track. A process's trace pid is its pid; when
  a pid was held by several processes during the session, the later holders get
  pids above PID_MAX_LIMIT, which no real process can have, and their real pid
  stays in the name and the args.
* One lifetime slice ("X") per process on its main thread (tid = trace pid),
  with a nested slice per exec, from the exec to the next one or the end, and
  a zombie slice after it until the reap. Instant events mark signals and failed
  execs; the misses of a PATH search are not failures, and the slice of the
  exec that ended the search counts them (`path_misses`). The table keeps no
  per-thread lives (only counts, and the tids alive at the end), so thread
  facts are in the lifetime slice's args, not on tracks.
* Groups. The format has no groups of processes either. When the processes
  ran in more than one container or systemd unit (words.group_words), the
  tracks are ordered by group, in order of first appearance, and by the tree
  walk within each group; each track's labels (process_labels, which Perfetto
  and chrome://tracing show beside the name) and args name its group, and
  otherData counts the processes of each.
* Time. Timestamps are microseconds since the first event of the session (the
  wall-clock origin is in otherData), written with nanosecond precision.
  Perfetto rounds each value to whole nanoseconds, so slices nest there exactly
  as they do in the table; chrome://tracing adds ts + dur in floating point,
  so a slice's float end is also kept at or before its parent's (a last-ulp
  nudge where the addition rounds up).
* Strings. Everything a process chose (comm, filename, argv) is escaped as in
  the other views (text.escape_bytes), and characters beyond the BMP are
  escaped too (text.bmp_only): the output is ASCII, and Perfetto's JSON reader
  rejects the \\ud800-\\udfff escapes that JSON would otherwise need for them.
  Outcomes, signals and statuses are worded by tracer/formats/words.py.
"""

from __future__ import annotations

import json
import math
from typing import Any, TextIO

from proctrace import __version__
from proctrace.formats.text import bmp_only, comm_text, cut, escape_bytes, format_duration, shell_quote
from proctrace.formats.words import (
    delivered_title,
    group_exit_cause,
    group_words,
    handler_name,
    process_outcome,
    result_name,
    sent_words,
    status_fields,
)
from proctrace.model.clock import Clock
from proctrace.model.events import SIGNAL_DELIVER, errno_name, signal_name
from proctrace.model.process_table import ExecRecord, Process, ProcessTable, SignalRecord

PID_MAX_LIMIT = 1 << 22
"""The kernel's largest possible pid (include/linux/threads.h): trace pids from
here up stand for later holders of a reused pid."""

NAME_MAX = 120
"""Characters of a command line in a track or slice name; args carry it whole."""

NO_GROUP = "neither container nor unit known"
"""The group label of a process outside any container or unit (or not known to be in one)."""

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


# The track of the counters: beyond every pid and every stand-in for a reused one.
COUNTERS_PID = 2 * PID_MAX_LIMIT


def _esc(raw: bytes) -> str:
    return bmp_only(escape_bytes(raw))


def _name(text: str) -> str:
    return cut(text, NAME_MAX, whole_escapes=True)


def _words(argv: list[bytes]) -> str:
    return bmp_only(" ".join(shell_quote(a) for a in argv))


def export_chrome_trace(table: ProcessTable, out: TextIO, clock: Clock, roots: list[int] | None = None) -> int:
    """Write the session in `table` to `out` as Chrome Trace Event JSON: all of
    it, or with `roots` only the subtrees of those pids. Returns the number of
    trace events written."""
    procs = table.tree_order(roots)
    groups = {rec.serial: group_words(table.group_of(rec)) for rec in procs}
    if len(set(groups.values())) > 1:
        # Stable: within a group the tree walk's order stays. Groups by first appearance.
        first: dict[str | None, int] = {}
        for rec in procs:
            first.setdefault(groups[rec.serial], len(first))
        procs = sorted(procs, key=lambda rec: first[groups[rec.serial]])
    else:
        groups = {}  # one group, or none known: nothing to tell the tracks apart by
    origin = table.session_start()
    end = table.last_ts if table.last_ts is not None and table.last_ts >= origin else origin
    writer = _Writer(clock, origin, end)
    trace_pids: dict[int, int] = {}  # serial -> trace pid
    held: set[int] = set()
    reused = 0
    for rec in sorted(procs, key=lambda r: (r.start_ns, r.serial)):
        if rec.tgid in held:
            trace_pids[rec.serial] = PID_MAX_LIMIT + reused
            reused += 1
        else:
            held.add(rec.tgid)
            trace_pids[rec.serial] = rec.tgid
    for index, rec in enumerate(procs):
        group = (groups[rec.serial] or NO_GROUP) if groups else None
        writer.process(rec, trace_pids[rec.serial], index, group)
    writer.counters(procs)
    timed = [event for _, event in sorted(writer.timed, key=lambda item: item[0])]
    events = writer.meta + timed
    other = {
        "tool": "proctrace",
        "version": __version__,
        "time_unit": "ts and dur: microseconds since origin_time",
        "origin_time": clock.iso(origin),
        "origin_wall_ns": clock.wall_ns(origin),
        "origin_monotonic_ns": origin,
        "end_time": clock.iso(end),
        "duration_ns": end - origin,
        "processes": len(procs),
        "events_lost": table.lost_total,
        "roots": list(roots) if roots else None,
        "reused_pid_base": PID_MAX_LIMIT,
    }
    if groups:
        counts: dict[str, int] = {}
        for name in groups.values():
            key = NO_GROUP if name is None else name
            counts[key] = counts.get(key, 0) + 1
        other["groups"] = counts
    out.write('{"traceEvents":[')
    separator = "\n"
    for event in events:  # one event a line: diffable, and no second copy of the file in memory
        out.write(separator + _encode(event))
        separator = ",\n"
    out.write('\n],\n"displayTimeUnit":"ms",\n"otherData":' + _encode(other) + "}\n")
    return len(events)


def _last_seen(rec: Process) -> int:
    """The latest time the table saw `rec`, for a process whose end is unknown."""
    times = [rec.start_ns, rec.first_seen_ns or 0, rec.forked_ns or 0]
    times.extend(ex.ts_ns for ex in rec.execs[-1:])
    times.extend(ex.ts_ns for ex in rec.failed_execs[-1:])
    times.extend(sig.ts_ns for sig in rec.signals[-1:])
    times.extend(ts for ts, _ in rec.comms[-1:])
    return max(times)


def _exec_args(ex: ExecRecord) -> dict[str, Any]:
    args: dict[str, Any] = {"filename": _esc(ex.filename), "argv": [_esc(a) for a in ex.argv]}
    if ex.errno:
        args["errno"] = errno_name(ex.errno)
    for flag in ("argv_truncated", "filename_truncated", "argv_unreadable"):
        if getattr(ex, flag):
            args[flag] = True
    if ex.old_pid:
        args["old_pid"] = ex.old_pid
    if ex.path_misses:
        args["path_misses"] = ex.path_misses
    return args


def _signal_event(sig: SignalRecord) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"signal": signal_name(sig.signo), "signo": sig.signo}
    if sig.stage == SIGNAL_DELIVER:
        args["stage"] = "deliver"
        args["handler"] = handler_name(sig.handler)
        cause = group_exit_cause(sig.signo, sig.group_exit_signo)
        if cause:
            args["group_exit_signal"] = signal_name(cause)
        return delivered_title(sig.signo, sig.group_exit_signo), args
    args["stage"] = "generate"
    args["sender_pid"] = sig.sender_pid
    args["result"] = result_name(sig.result)
    return sent_words(sig.signo, None if sig.sender_pid is None else str(sig.sender_pid)), args


class _Writer:
    """Builds the events of each process: metadata in tree order, the rest
    with a sort key so that the timed events come out in time order, a parent
    slice before the slices it contains."""

    def __init__(self, clock: Clock, origin: int, end: int) -> None:
        self.clock = clock
        self.origin = origin
        self.end = end
        self.meta: list[dict[str, Any]] = []
        self.timed: list[tuple[tuple[int, int, int, int, int], dict[str, Any]]] = []

    def _at(self, ts_ns: int) -> int:
        return min(max(ts_ns, self.origin), self.end) - self.origin

    def _slice(
        self, pid: int, name: str, cat: str, start: int, stop: int, cap_us: float, depth: int, args: dict[str, Any]
    ) -> tuple[float, float]:
        """A complete event over [start, stop] (ns since origin) whose float end
        stays at or before `cap_us`; returns its float (ts, end)."""
        ts = start / 1000
        dur = (stop - start) / 1000
        while dur > 0 and ts + dur > cap_us:
            dur = math.nextafter(dur, 0.0)
        event = {"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": dur, "pid": pid, "tid": pid, "args": args}
        self.timed.append(((start, 0, start - stop, depth, len(self.timed)), event))
        return ts, ts + dur

    def _instant(self, pid: int, name: str, cat: str, at: int, args: dict[str, Any]) -> None:
        event = {"name": name, "cat": cat, "ph": "i", "s": "t", "ts": at / 1000, "pid": pid, "tid": pid, "args": args}
        self.timed.append(((at, 1, 0, 0, len(self.timed)), event))

    def counters(self, procs: list[Process]) -> None:
        """Two counter tracks on a track of their own: processes alive, and CPU
        in use, in CPUs. A process's CPU time is known only as a total, at its
        exit, so it counts as spread evenly over its life: an estimate, exact
        over the whole session."""
        changes: dict[int, list[float]] = {}  # at -> [processes, cpus]
        for rec in procs:
            if not rec.start_ns:
                continue
            begin, finish = self._at(rec.start_ns), self._at(rec.end_ns if rec.end_ns is not None else self.end)
            rate = 0.0
            if rec.usage is not None and finish > begin:
                rate = (rec.usage.cpu_user_ns + rec.usage.cpu_sys_ns) / (finish - begin)  # ns of CPU per ns
            for at, sign in ((begin, 1), (finish, -1)):
                step = changes.setdefault(at, [0.0, 0.0])
                step[0] += sign
                step[1] += sign * rate
        if not changes:
            return
        self._meta(COUNTERS_PID, "process_name", {"name": "proctrace: processes and CPU"})
        live, cpus = 0.0, 0.0
        for at in sorted(changes):
            live += changes[at][0]
            cpus += changes[at][1]
            ts = at / 1000
            for name, value in (("processes alive", round(live)), ("CPU in use (CPUs)", round(max(cpus, 0.0), 3))):
                event = {"name": name, "ph": "C", "ts": ts, "pid": COUNTERS_PID, "args": {"value": value}}
                self.timed.append(((at, 2, 0, 0, len(self.timed)), event))

    def _meta(self, pid: int, name: str, args: dict[str, Any]) -> None:
        self.meta.append({"name": name, "ph": "M", "pid": pid, "tid": pid, "args": args})

    def process(self, rec: Process, pid: int, sort_index: int, group: str | None = None) -> None:
        """The events of one process; `group` its container or unit (or
        NO_GROUP) when the trace groups processes, else None."""
        origin = self.origin
        comm = bmp_only(comm_text(rec.comm))
        parent = rec.original_ppid
        title = f"{comm} [{rec.tgid}]" + (f" ← {parent}" if parent else "")
        if rec.argv:
            title += " · " + _name(_words(rec.argv))
        self._meta(pid, "process_name", {"name": title})
        self._meta(pid, "process_sort_index", {"sort_index": sort_index})
        self._meta(pid, "thread_name", {"name": comm})

        pre_existing = rec.pre_existing or rec.start_ns < origin
        start = self._at(rec.start_ns)
        running = rec.end_ns is None and rec.reaped_ns is None and not rec.retired
        if rec.end_ns is not None:
            stop = self._at(rec.end_ns)
        elif rec.reaped_ns is not None:
            stop = self._at(rec.reaped_ns)  # its exit was not seen; the reap ends it
        elif rec.retired:
            stop = self._at(_last_seen(rec))  # gone unseen: the last sign of it
        else:
            stop = self.end - origin
        stop = max(stop, start)

        labels = []
        if group is not None:
            labels.append(bmp_only(group))
        if pre_existing:
            labels.append("pre-existing")
        if running:
            labels.append("running")
        if rec.waiting:
            labels.append("zombie")
        if rec.adopted_by is not None:
            labels.append(f"adopted by {rec.adopted_by}")
        if rec.incomplete:
            labels.append("incomplete")
        if labels:
            self._meta(pid, "process_labels", {"labels": ", ".join(labels)})

        life = rec.lifetime_ns
        zombie = rec.zombie_ns
        args: dict[str, Any] = {
            "pid": rec.tgid,
            "ppid": rec.ppid,
            "parent_pid": parent,
            "forked_by": rec.forked_by,
            "comm": _esc(rec.comm),
            "argv": [_esc(a) for a in rec.argv],
            "running": running,
            "pre_existing": pre_existing,
            "start_ns": rec.start_ns or None,
            "started": self.clock.iso(rec.start_ns) if rec.start_ns else None,
            "start_exact": rec.start_exact,
            "end_ns": rec.end_ns,
            "exit_seen": None if running else rec.end_ns is not None,
            "outcome": "running" if running else process_outcome(rec)[0],
            "lifetime_ns": life,
            "lifetime": format_duration(life) if life is not None else None,
            "reaped_ns": rec.reaped_ns,
            "reaper": rec.reaper,
            "zombie_ns": zombie,
            "zombie": format_duration(zombie) if zombie is not None else None,
            "zombie_at_end": rec.waiting,
            "adopted_by": rec.adopted_by,
            "threads": rec.threads,
            "threads_created": rec.threads_created,
            "live_tids": sorted(rec.tids) if rec.tids else None,
            "children": rec.children_count,
            "incomplete": rec.incomplete or None,
            "trace_pid": pid if pid != rec.tgid else None,
            "group": None if group is None else bmp_only(group),
        }
        if running and rec.start_ns:
            args["running_for_ns"] = max(0, self.end - rec.start_ns)  # as the views say "so far"
        args = {k: v for k, v in args.items() if v is not None}
        if rec.status is not None:
            args.update(status_fields(rec.status))  # exit_code and signal both, one null
        if rec.usage is not None:
            args.update(rec.usage.to_dict())  # what it used, as its exit event carries it
        if rec.oom_killed:
            args["oom_killed"] = True
            if rec.oom_memcg is not None:
                args["oom_memcg"] = _esc(rec.oom_memcg)
        if rec.killed_by_pid is not None:
            args["killed_by_pid"] = rec.killed_by_pid
            args["killed_by_comm"] = _esc(rec.killed_by_comm or b"")
        if rec.autoreaped:
            args["autoreaped"] = True
        name = f"{comm}: " + ("running" if running else process_outcome(rec)[0])
        _, life_end = self._slice(pid, name, "process", start, stop, stop / 1000, 0, args)

        execs = rec.execs
        for i, ex in enumerate(execs):
            begin = min(max(self._at(ex.ts_ns), start), stop)
            until = self._at(execs[i + 1].ts_ns) if i + 1 < len(execs) else stop
            until = min(max(until, begin), stop)
            label = _name(_words(ex.argv) if ex.argv else _esc(ex.filename))
            self._slice(pid, label or "exec", "exec", begin, until, life_end, 1, _exec_args(ex))
        for ex in rec.failed_execs:
            if ex.path_search:
                continue  # not a failure: the exec slice that ended the search counts it
            self._instant(
                pid, f"exec failed: {errno_name(ex.errno)}", "exec_failed", self._at(ex.ts_ns), _exec_args(ex)
            )
        for sig in rec.signals:
            label, sig_args = _signal_event(sig)
            self._instant(pid, label, "signal", self._at(sig.ts_ns), sig_args)

        if rec.end_ns is not None and (rec.reaped_ns is not None or rec.waiting):
            reaped = rec.reaped_ns is not None
            until = self._at(rec.reaped_ns) if rec.reaped_ns is not None else self.end - origin
            until = max(until, stop)
            zargs: dict[str, Any] = {"reaped": reaped, "zombie_at_end": not reaped}
            if reaped:
                zargs["reaper"] = rec.reaper
                zargs["zombie_ns"] = zombie
            else:
                zargs["zombie_so_far_ns"] = max(0, self.end - rec.end_ns)
            name = f"zombie, reaped by {rec.reaper}" if reaped else "zombie, not reaped"
            self._slice(pid, name, "zombie", stop, until, until / 1000, 0, zargs)
        elif rec.end_ns is None and rec.reaped_ns is not None:
            self._instant(pid, f"reaped by {rec.reaper}", "reap", stop, {"reaper": rec.reaper, "exit_seen": False})
