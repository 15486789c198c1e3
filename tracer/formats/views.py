"""The end-of-session views of the process table: timeline, tree, summary, JSON.

This module owns how a process's life is shown once a session ends (live or,
later, replayed): per-process timelines, the process tree, the summary tables,
and the JSON object per process. The facts come from tracer/model/process_table.py;
the words for outcomes and signals from tracer/formats/words.py.

Every string a process chose (comm, filename, argv) goes through
text.escape_bytes or text.shell_quote, and then into rich.text.Text objects
(tree, summary) or plain lines (timeline), never into markup: a comm such as "[red]x" is printed
as those characters, and control bytes as escapes. The consoles are made with
markup, emoji and highlighting off as a second guard.

Times are shown relative to the first event of the session ("+1.234567s"), or
as wall-clock time when a Clock is given.

Where and as whom a process runs (its context) is said only where it differs
from its parent's: the tree and the timeline name its working directory and
its effective user when they are not those of the parent that forked it, and
flag every gain of privilege (a set-user-ID exec, file capabilities, a change
of credentials back to root).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from proctrace.formats.text import (
    DETAIL_MAX,
    STYLES,
    TRUNCATED,
    ansi_codes,
    comm_text,
    cut,
    escape_bytes,
    format_bytes,
    format_duration,
    format_kb,
    shell_quote,
)
from proctrace.formats.words import (
    cred_words,
    delivered_words,
    exec_notes,
    folded_fields,
    folded_record_words,
    folded_words,
    group_words,
    handler_name,
    killer_words,
    lost_summary_words,
    outcome,
    path_misses_words,
    privilege_gain_words,
    process_outcome,
    result_name,
    result_words,
    sent_words,
    status_fields,
    usage_detail_words,
    usage_words,
    user_name,
)
from proctrace.model.clock import Clock
from proctrace.model.context import Credentials, ProcessContext, creds_to_dict
from proctrace.model.critical_path import critical_path, shares
from proctrace.model.events import SIGNAL_DELIVER, USAGE_FIELDS, CredEvent, as_text, errno_name, signal_name
from proctrace.model.process_table import (
    CONSUMER_RANKINGS,
    SIGCONT,
    Aggregates,
    CommandCount,
    ExecRecord,
    GroupKey,
    LifetimeEntry,
    Process,
    ProcessTable,
    SignalRecord,
)
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

COMMAND_MAX = 200
"""Characters of a command line shown in the tree and the summary before it is cut."""

SUMMARY_ROWS = 20
"""Rows per summary table before the rest is folded into one line."""

_TRAILING_BLANKS = re.compile(r" +$", re.MULTILINE)


@contextmanager
def _console(stream: TextIO, color: bool, width: int | None) -> Iterator[Console]:
    """A console whose output reaches `stream` at the end, each line without the
    trailing blanks rich pads tables and titles with."""
    console = Console(
        file=stream,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        markup=False,
        emoji=False,
        highlight=False,
    )
    with console.capture() as captured:
        yield console
    stream.write(_TRAILING_BLANKS.sub("", captured.get()))


def _selected(
    table: ProcessTable, pids: list[int] | None, roots: list[int] | None, serials: list[int] | None = None
) -> list[Process]:
    if serials is not None:  # these records only: not every holder of their pids
        return [rec for rec in map(table.get, serials) if rec is not None]
    procs = table.subtree(roots) if roots else table.processes()
    if pids:
        wanted = set(pids)
        procs = [p for p in procs if p.tgid in wanted]
    return procs


# ---------------------------------------------------------------------------
# Words shared by the views


def _argv_words(argv: list[bytes] | tuple[bytes, ...], limit: int = COMMAND_MAX) -> str:
    return cut(" ".join(shell_quote(a) for a in argv), limit)


def command_line(rec: Process, limit: int = COMMAND_MAX) -> str:
    """The process's command line, escaped and quoted, cut at `limit` characters;
    "[comm]" when it has none (a kernel thread, or a process only seen reaped)."""
    return _argv_words(rec.argv, limit) if rec.argv else f"[{comm_text(rec.comm)}]"


def _exec_words(ex: ExecRecord) -> str:
    words = [shell_quote(ex.filename) + (TRUNCATED if ex.filename_truncated else "")]
    words.extend(shell_quote(a) for a in ex.argv)
    words.extend(exec_notes(ex.argv_unreadable, ex.argv_truncated, ex.old_pid, ex.path_misses))
    text = cut(" ".join(words), DETAIL_MAX)
    gain = _exec_gain_words(ex)
    return text if gain is None else f"{text} ({gain})"  # after any cut: a gain is never cut off


def _exec_gain_words(ex: ExecRecord) -> str | None:
    ctx = ex.context
    if ctx is None or not ctx.privilege_gain or ctx.creds is None or ctx.creds_before is None:
        return None
    return privilege_gain_words(ctx.creds_before, ctx.creds)


def _first_gain_words(rec: Process) -> str | None:
    """The words of the first gain of privilege of a process (at exec or by a cred change)."""
    gains: list[tuple[int, str]] = []
    for ex in rec.execs:
        words = _exec_gain_words(ex)
        if words is not None:
            gains.append((ex.ts_ns, words))
            break
    for change in rec.cred_changes:
        if change.privilege_gain and change.before is not None and change.after is not None:
            gains.append((change.ts_ns, privilege_gain_words(change.before, change.after)))
            break
    return min(gains)[1] if gains else None


def cwd_words(ctx: ProcessContext) -> str | None:
    if ctx.cwd is None:
        return None
    shown = escape_bytes(ctx.cwd)
    if ctx.cwd_truncated:
        shown = "…/" + shown  # only its deepest components were read
    return shown + (" (deleted)" if ctx.cwd_deleted else "")


class _Contexts:
    """What the tree and the timeline say of a process's context: its working
    directory and effective user, each only when it differs from its parent's
    (the parent it was born to) or the parent's is unknown. A process that
    never exec'd has no directory of its own on record (a fork does not say
    it), so a parent's is the nearest ancestor's that is known; credentials
    pass on at fork, so each process has its own."""

    def __init__(self, table: ProcessTable) -> None:
        self.table = table
        self._cwds: dict[int, bytes | None] = {}

    def _known_cwd(self, rec: Process | None) -> bytes | None:
        chain: list[int] = []
        found: bytes | None = None
        seen = 0
        while rec is not None and seen < 10_000:  # a loop of parent links, were there one, ends too
            if rec.serial in self._cwds:
                found = self._cwds[rec.serial]
                break
            chain.append(rec.serial)
            if rec.context is not None and rec.context.cwd is not None:
                found = rec.context.cwd
                break
            rec = self.table.get(rec.origin_serial)
            seen += 1
        for serial in chain:
            self._cwds[serial] = found
        return found

    def notes(self, rec: Process) -> list[str]:
        """["cwd /srv/app", "user www-data"], or the part that differs, or []."""
        parent = self.table.get(rec.origin_serial)
        notes = []
        ctx = rec.context
        if ctx is not None and ctx.cwd is not None and ctx.cwd != self._known_cwd(parent):
            shown = cwd_words(ctx)
            if shown is not None:
                notes.append(f"cwd {shown}")
        creds: Credentials | None = rec.creds
        if creds is not None and (parent is None or parent.creds is None or parent.creds.euid != creds.euid):
            notes.append(f"user {user_name(creds.euid)}")
        return notes


def _pid_name(table: ProcessTable, pid: int, serial: int | None) -> str:
    """The pid with its comm, as in "1234 (bash)", while its record is kept; else the pid."""
    rec = table.get(serial)
    return f"{pid} ({escape_bytes(rec.comm)})" if rec is not None and rec.comm else str(pid)


class _Stamp:
    """Formats a timestamp: relative to the session's start, or wall-clock time."""

    def __init__(self, origin_ns: int, clock: Clock | None) -> None:
        self.origin_ns = origin_ns
        self.clock = clock

    def __call__(self, ts_ns: int) -> str:
        if self.clock is not None:
            wall = self.clock.wall_ns(ts_ns)
            return time.strftime("%H:%M:%S", time.localtime(wall // 1_000_000_000)) + f".{wall % 10**9 // 1000:06d}"
        delta = ts_ns - self.origin_ns
        sign = "-" if delta < 0 else "+"
        seconds, ns = divmod(abs(delta), 1_000_000_000)
        return f"{sign}{seconds}.{ns // 1000:06d}s"


# ---------------------------------------------------------------------------
# Timeline


def timeline_lines(table: ProcessTable, rec: Process, end_ns: int) -> list[tuple[int, str, str]]:
    """(ts_ns, colour role, text) for each thing that happened to `rec`, in order."""
    lines: list[tuple[int, str, str]] = []
    add = lines.append
    if rec.pre_existing:
        when = "" if rec.start_exact else " (time from /proc: approximate)"
        add((rec.start_ns, "other", f"started before tracing{when}, parent {rec.original_ppid}"))
    elif rec.forked_ns is not None:
        text = f"forked by {_pid_name(table, rec.forked_by or 0, rec.forked_by_serial)}"
        if rec.forked_by != rec.original_ppid:
            text += f" as a child of {rec.original_ppid} (CLONE_PARENT)"
        add((rec.forked_ns, "fork", text))
    elif rec.start_ns:
        add((rec.start_ns, "other", f"started (fork not seen), parent {rec.original_ppid}"))
    exec_times = {ex.ts_ns for ex in rec.execs}
    for ex in rec.execs:
        add((ex.ts_ns, "privilege" if ex.privilege_gain else "exec", "exec " + _exec_words(ex)))
    for ex in rec.failed_execs:
        if not ex.path_search:  # a PATH miss is said on the line of the exec that ended its search
            add((ex.ts_ns, "exec_failed", f"exec FAILED {errno_name(ex.errno)} " + _exec_words(ex)))
    for ts, comm in rec.comms[1:]:
        if ts not in exec_times:
            add((ts, "other", f"renamed itself {escape_bytes(comm)}"))
    if rec.leader_exit_ns is not None:
        add((rec.leader_exit_ns, "other", "main thread exited; the other threads go on"))
    stops = {stop.stopped_ns for stop in rec.stops}
    continues = {stop.continued_ns: stop for stop in rec.stops if stop.continued_ns is not None}
    for sig in rec.signals:
        if sig.stage == SIGNAL_DELIVER:
            text = delivered_words(sig.signo, sig.handler, sig.group_exit_signo, terse=False)
            if sig.ts_ns in stops:
                text += ": stopped"
            add((sig.ts_ns, "signal_deliver", text))
        else:
            sender = None if sig.sender_pid is None else _pid_name(table, sig.sender_pid, sig.sender_serial)
            text = sent_words(sig.signo, sender)
            if sig.result:
                text += f" ({result_words(sig.result)})"
            stop = continues.get(sig.ts_ns)
            if stop is not None and sig.signo == SIGCONT:
                text += f": continued after {format_duration(sig.ts_ns - stop.stopped_ns)} stopped"
            add((sig.ts_ns, "signal_generate", text))
    for folded in (rec.folded or {}).values():
        add((folded.first_ns, "signal_generate", folded_record_words(folded)))
    for change in rec.cred_changes:
        add((change.ts_ns, "privilege" if change.privilege_gain else "other", f"credentials: {cred_words(change)}"))
    for adoption in rec.adoptions:
        when = adoption.ts_ns if adoption.ts_ns is not None else adoption.seen_ns
        adopter = _pid_name(table, adoption.by, adoption.by_serial)
        text = f"orphaned: parent {adoption.previous} exited; adopted by {adopter}"
        if adoption.ts_ns is None:
            text += " (noticed then; the parent's exit was not seen)"
        add((when, "other", text))
    if rec.end_ns is not None:
        described, role = process_outcome(rec)
        life = rec.lifetime_ns
        add((rec.end_ns, role, described + (f" after {format_duration(life)}" if life is not None else "")))
        if rec.usage is not None:
            add((rec.end_ns, "other", usage_detail_words(rec.usage)))
    if rec.reaped_ns is not None and rec.autoreaped:
        add((rec.reaped_ns, "reap", "released by the kernel, never a zombie: its parent does not wait for it"))
    elif rec.reaped_ns is not None:
        text = f"reaped by {_pid_name(table, rec.reaper or 0, rec.reaper_serial)}"
        zombie = rec.zombie_ns
        if zombie is not None:
            text += f" after {format_duration(zombie)} as a zombie"
        elif rec.end_ns is None:
            text += " (" + process_outcome(rec)[0] + "; its exit was not seen)"
        add((rec.reaped_ns, "reap", text))
    elif rec.retired:
        add((rec.end_ns or rec.start_ns, "other", "its reap was not seen (a later process took its pid)"))
    elif rec.end_ns is not None:
        waited = max(0, end_ns - rec.end_ns)
        add((end_ns, "exit_bad", f"still a zombie at the end: not reaped after {format_duration(waited)}"))
    else:
        since = f" ({format_duration(end_ns - rec.start_ns)} so far)" if rec.start_ns and end_ns >= rec.start_ns else ""
        add((end_ns, "other", "still running at the end" + since))
    lines.sort(key=lambda line: line[0])  # stable: ties keep the order above
    return lines


def _timeline_footer(rec: Process) -> str:
    parts = []
    life = rec.lifetime_ns
    if life is not None:
        parts.append(f"lifetime {format_duration(life)}")
    zombie = rec.zombie_ns
    if zombie is not None:
        parts.append(f"zombie {format_duration(zombie)}")
    parts.append(f"{rec.children_count} child" + ("" if rec.children_count == 1 else "ren"))
    parts.append(f"{rec.threads} thread" + ("" if rec.threads == 1 else "s"))
    if rec.omitted:
        parts.append(f"{rec.omitted} entries not kept")
    return " · ".join(parts)


def render_timeline(
    table: ProcessTable,
    pids: list[int] | None,
    stream: TextIO,
    color: bool,
    *,
    roots: list[int] | None = None,
    clock: Clock | None = None,
    serials: list[int] | None = None,
) -> None:
    """Each process's life in order, one block per process (all of them, or
    those with a pid in `pids`; with `roots`, only within those subtrees;
    with `serials`, those records alone, as the live view opens one).

    Lines are plain strings with the stream renderer's ANSI codes, not rich
    renderables: a session keeps up to 10k processes, and rich costs ~90 us a
    line. Every process-chosen string in them is already escaped."""
    procs = _selected(table, pids, roots, serials)
    origin = table.first_ts if table.first_ts is not None else min((p.start_ns for p in procs), default=0)
    end_ns = table.last_ts if table.last_ts is not None else origin
    stamp = _Stamp(origin, clock)
    codes = ansi_codes() if color else None

    def paint(role: str, text: str) -> str:
        if codes is None:
            return text
        on, off = codes.get(role, ("", ""))
        return f"{on}{text}{off}"

    contexts = _Contexts(table)
    out: list[str] = []
    for rec in procs:
        if out:
            out.append("")
        head = paint("header", str(rec.tgid)) + " " + paint("comm", comm_text(rec.comm)) + f"  parent {rec.ppid}"
        for note in contexts.notes(rec):
            head += f"  {note}"
        if rec.pre_existing:
            head += "  [pre-existing]"
        if rec.incomplete:
            head += "  " + paint("exit_bad", "[incomplete: events were lost while it lived]")
        out.append(head)
        for ts, role, what in timeline_lines(table, rec, end_ns):
            out.append(f"  {paint('time', stamp(ts))}  {paint(role, what)}")
        out.append("  " + paint("time", _timeline_footer(rec)))
    if out:
        stream.write("\n".join(out) + "\n")


def _signal_dict(sig: SignalRecord) -> dict[str, Any]:
    d: dict[str, Any] = {"ts_ns": sig.ts_ns, "signal": signal_name(sig.signo)}
    if sig.stage == SIGNAL_DELIVER:
        d["stage"] = "deliver"
        d["handler"] = handler_name(sig.handler)
        d["group_exit_signal"] = signal_name(sig.group_exit_signo) if sig.group_exit_signo else None
    else:
        d["stage"] = "generate"
        d["sender_pid"] = sig.sender_pid
        d["result"] = result_name(sig.result)
    return d


def _cred_change_dict(change: CredEvent) -> dict[str, Any]:
    """A change of credentials, named as the cred record of the JSON lines."""
    return {
        "ts_ns": change.ts_ns,
        "tid": change.pid,
        "syscall": change.syscall,
        "before": None if change.before is None else creds_to_dict(change.before),
        "after": None if change.after is None else creds_to_dict(change.after),
        "groups_before": list(change.groups_before),
        "groups_before_count": change.groups_before_count,
        "groups_after": list(change.groups_after),
        "groups_after_count": change.groups_after_count,
        "privilege_gain": change.privilege_gain,
    }


def process_dict(rec: Process, end_ns: int | None = None) -> dict[str, Any]:
    """One process as a JSON-ready object; strings as in tracer/formats/jsonl.py.
    The context fields (those of an exec record, ProcessContext.to_dict) follow
    `uid` when its context is known: its latest exec's, else the snapshot's."""
    context = {} if rec.context is None else rec.context.to_dict()
    return {
        "pid": rec.tgid,
        "tgid": rec.tgid,
        "ppid": rec.ppid,
        "original_ppid": rec.original_ppid,
        "forked_by": rec.forked_by,
        "comm": as_text(rec.comm),
        "comms": [{"ts_ns": ts, "comm": as_text(comm)} for ts, comm in rec.comms],
        "uid": rec.uid,
        **context,
        "creds": None if rec.creds is None else creds_to_dict(rec.creds),
        "cgroup_id": rec.cgroup_id or None,
        "start_ns": rec.start_ns or None,
        "start_exact": rec.start_exact,
        "forked_ns": rec.forked_ns,
        "end_ns": rec.end_ns,
        "lifetime_ns": rec.lifetime_ns,
        "execs": [
            {
                "ts_ns": ex.ts_ns,
                "filename": as_text(ex.filename),
                "argv": [as_text(a) for a in ex.argv],
                "argv_truncated": ex.argv_truncated,
                "filename_truncated": ex.filename_truncated,
                "old_pid": ex.old_pid or None,
                "path_misses": ex.path_misses,
                "privilege_gain": ex.privilege_gain,
            }
            for ex in rec.execs
        ],
        "failed_execs": [
            {
                "ts_ns": ex.ts_ns,
                "filename": as_text(ex.filename),
                "argv": [as_text(a) for a in ex.argv],
                "errno": errno_name(ex.errno),
                "path_search": ex.path_search,
            }
            for ex in rec.failed_execs
        ],
        "path_misses": rec.path_misses,
        **status_fields(rec.status),
        # What ended it, as its exit event says
        "oom_killed": rec.oom_killed,
        "oom_memcg": None if rec.oom_memcg is None else as_text(rec.oom_memcg),
        "killed_by_pid": rec.killed_by_pid,
        "killed_by_comm": None if rec.killed_by_comm is None else as_text(rec.killed_by_comm),
        # What it used (the fields of its exit event), null where not read.
        **(dict.fromkeys(USAGE_FIELDS) if rec.usage is None else rec.usage.to_dict()),
        "reaped_ns": rec.reaped_ns,
        "reaper": rec.reaper,
        "autoreaped": rec.autoreaped,
        "zombie_ns": rec.zombie_ns,
        "zombie_at_end": rec.waiting,
        "zombie_so_far_ns": (
            max(0, end_ns - rec.end_ns) if rec.waiting and end_ns is not None and rec.end_ns is not None else None
        ),
        "threads": rec.threads,
        "threads_created": rec.threads_created,
        "children": list(rec.children),
        "children_count": rec.children_count,
        "signals": [_signal_dict(sig) for sig in rec.signals],
        "stops": [
            {"stopped_ns": s.stopped_ns, "signal": signal_name(s.signo), "continued_ns": s.continued_ns}
            for s in rec.stops
        ],
        "folded_signals": [folded_fields(f) for f in (rec.folded or {}).values()],
        "cred_changes": [_cred_change_dict(c) for c in rec.cred_changes],
        "adopted_by": rec.adopted_by,
        "adopted_ns": rec.adopted_ns,
        "pre_existing": rec.pre_existing,
        "incomplete": rec.incomplete,
        "omitted": rec.omitted,
    }


def timeline_json(
    table: ProcessTable, pids: list[int] | None, *, roots: list[int] | None = None
) -> list[dict[str, Any]]:
    """One object per process, in order of start (see process_dict)."""
    return [process_dict(rec, table.last_ts) for rec in _selected(table, pids, roots)]


# ---------------------------------------------------------------------------
# Tree


def _tree_label(
    table: ProcessTable, rec: Process, end_ns: int, contexts: _Contexts, subtree_cpu_ns: int | None = None
) -> Text:
    label = Text()
    label.append(str(rec.tgid), style="bold")
    label.append(" ")
    label.append(command_line(rec))
    if rec.end_ns is None:
        label.append("  running")
        if rec.start_ns and end_ns >= rec.start_ns:
            label.append(f" {format_duration(end_ns - rec.start_ns)}")
        label.stylize("dim")
    else:
        life = rec.lifetime_ns
        if life is not None:
            label.append(f"  {format_duration(life)}")
        described, role = process_outcome(rec)
        label.append("  ")
        label.append(described, style=STYLES[role])
        if rec.waiting:
            label.append(" (zombie, not reaped)", style=STYLES["exit_bad"])
        if rec.usage is not None:
            label.append(f"  {usage_words(rec.usage)}")
    if subtree_cpu_ns is not None:
        label.append(f"  (subtree cpu {format_duration(subtree_cpu_ns)})")
    notes = contexts.notes(rec)
    if rec.threads > 1:
        notes.append(f"{rec.threads} threads")
    if rec.adopted_by is not None:
        notes.append(f"adopted by {rec.adopted_by}")
    if rec.pre_existing:
        notes.append("pre-existing")
    if rec.incomplete:
        notes.append("incomplete")
    if notes:
        label.append(f"  ({', '.join(notes)})")
    gain = _first_gain_words(rec)
    if gain is not None:
        label.append("  ")
        label.append(gain, style=STYLES["privilege"])
    return label


def render_tree(
    table: ProcessTable,
    stream: TextIO,
    color: bool,
    roots: list[int] | None = None,
    *,
    width: int | None = None,
) -> None:
    """The process tree by birth (an adopted orphan stays under the parent that
    forked it, with "adopted by" noted), coloured by outcome."""
    with _console(stream, color, width) as console:
        end_ns = table.last_ts or 0
        index = table.children_index()
        if roots:
            wanted = set(roots)
            tops = [p for p in table.processes() if p.tgid in wanted]
        else:
            tops = table.roots()
        contexts = _Contexts(table)
        subtree = _subtree_cpu(tops, index)

        def label(rec: Process) -> Text:
            return _tree_label(table, rec, end_ns, contexts, subtree.get(rec.serial))

        for top in tops:
            tree = Tree(label(top), guide_style="dim")
            stack: list[tuple[Tree, Process]] = [(tree, top)]
            while stack:  # not recursive: a chain of forks may be thousands deep
                node, rec = stack.pop()
                for child in index.get(rec.serial, ()):
                    stack.append((node.add(label(child)), child))
            console.print(tree)


def _subtree_cpu(tops: list[Process], index: Mapping[int, list[Process]]) -> dict[int, int]:
    """CPU used by each process with descendants together with them, by serial,
    where a descendant's usage is known (a process's own figures never include
    its children's: the kernel reads them at its own exit)."""
    order: list[Process] = []
    stack = list(tops)
    while stack:  # a pre-order, walked backwards: every child before its parent
        rec = stack.pop()
        order.append(rec)
        stack.extend(index.get(rec.serial, ()))
    totals: dict[int, int] = {}
    below: dict[int, int] = {}
    for rec in reversed(order):
        own = 0 if rec.usage is None else rec.usage.cpu_user_ns + rec.usage.cpu_sys_ns
        children = below.get(rec.serial, 0)
        total = own + children
        if children:
            totals[rec.serial] = total
        parent = rec.origin_serial
        if parent is not None:
            below[parent] = below.get(parent, 0) + total
    return totals


# ---------------------------------------------------------------------------
# Summary


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left", no_wrap=name not in ("COMMAND", "WHAT"))
    return t


def _lifetime_rows(t: Table, entries: list[LifetimeEntry]) -> None:
    for entry in entries:
        described, role = outcome(entry.status)
        what = _argv_words(entry.argv, 60) if entry.argv else f"[{comm_text(entry.comm)}]"
        if entry.pre_existing:
            what += " (pre-existing)"
        t.add_row(
            Text(str(entry.tgid)),
            Text(what),
            Text(format_duration(entry.lifetime_ns)),
            Text(described, style=STYLES[role]),
        )


def _group_table(groups: Mapping[GroupKey | None, CommandCount], other: CommandCount) -> Table:
    """Processes by container or unit, most first; those in neither (or where
    it is not known) in one row."""
    t = _table(
        "By container or unit",
        "CONTAINER OR UNIT",
        "PROCESSES",
        "EXIT 0",
        "FAILED",
        "RUNNING",
        right=("PROCESSES", "EXIT 0", "FAILED", "RUNNING"),
    )
    named = sorted(
        ((group_words(key) or "", c) for key, c in groups.items() if key is not None),
        key=lambda kv: (-kv[1].processes, kv[0]),
    )
    rows = named[:SUMMARY_ROWS]
    rest = [c for _, c in named[SUMMARY_ROWS:]]
    if other.processes:
        rest.append(other)
    for name, c in rows:
        t.add_row(Text(name), *(Text(str(n)) for n in (c.processes, c.ok, c.failed, c.running)))
    if rest:
        total = [sum(getattr(c, f) for c in rest) for f in ("processes", "ok", "failed", "running")]
        t.add_row(Text("(others)"), *(Text(str(n)) for n in total))
    neither = groups.get(None)
    if neither is not None:
        counts = (neither.processes, neither.ok, neither.failed, neither.running)
        t.add_row(Text("(neither, or not known)"), *(Text(str(n)) for n in counts))
    return t


def _print_consumers(console: Console, agg: Aggregates) -> None:
    """The processes that used the most CPU, peak RSS and I/O, one table per
    figure, and what each command used."""
    columns = ("CPU", "PEAK RSS", "READ", "WRITTEN")
    for ranking in CONSUMER_RANKINGS:
        top = agg.top_consumers(ranking)
        if not top:
            continue
        t = _table(f"Top consumers ({ranking})", "PID", "COMMAND", *columns, right=("PID", *columns))
        for c in top:
            u = c.usage
            t.add_row(
                Text(str(c.tgid)),
                Text(_argv_words(c.argv) or comm_text(c.comm)),
                *_usage_cells(c.cpu_ns, u.max_rss_kb, u.read_bytes, u.write_bytes),
            )
        console.print(t)
    if not agg.usage_by_command:
        return
    by_command = sorted(agg.usage_by_command.items(), key=lambda kv: (-kv[1].cpu_ns, kv[0]))[:SUMMARY_ROWS]
    t = _table("Usage by command (most CPU first)", "COMMAND", "PROCESSES", *columns, right=("PROCESSES", *columns))
    for comm, u in by_command:
        t.add_row(
            Text(comm_text(comm)),
            Text(str(u.processes)),
            *_usage_cells(u.cpu_ns, u.max_rss_kb, u.read_bytes, u.write_bytes),
        )
    console.print(t)


def _usage_cells(cpu_ns: int, max_rss_kb: int, read: int | None, written: int | None) -> list[Text]:
    io = ["n/a" if n is None else format_bytes(n) for n in (read, written)]
    return [Text(format_duration(cpu_ns)), Text(format_kb(max_rss_kb)), Text(io[0]), Text(io[1])]


def _print_critical_path(console: Console, table: ProcessTable) -> None:
    """The chain of processes that bounds the wall time of the longest-lived
    process whose whole life was seen (with -- COMMAND, the command), each with
    its share."""
    index = table.children_index()
    spans = [(rec.end_ns - rec.start_ns, rec) for rec in table.processes() if rec.end_ns is not None and rec.start_ns]
    if not spans:
        return
    wall, root = max(spans, key=lambda item: (item[0], -item[1].serial))
    on_path = shares(critical_path(root, index))
    if wall <= 0 or len(on_path) < 2:
        return  # one process: it is its own critical path, nothing to say
    console.print(
        Text(f"Critical path: what bounds the {format_duration(wall)} of {root.tgid} ({command_line(root)})"),
        soft_wrap=True,
    )
    t = _table(
        "Critical path",
        "PID",
        "COMMAND",
        "ON THE PATH",
        "SHARE",
        right=("PID", "ON THE PATH", "SHARE"),
    )
    for rec, ns in on_path[:SUMMARY_ROWS]:
        t.add_row(
            Text(str(rec.tgid)), Text(command_line(rec)), Text(format_duration(ns)), Text(f"{100 * ns / wall:.1f}%")
        )
    if len(on_path) > SUMMARY_ROWS:
        rest = sum(ns for _, ns in on_path[SUMMARY_ROWS:])
        t.add_row(
            Text(f"(and {len(on_path) - SUMMARY_ROWS} more)"),
            Text(""),
            Text(format_duration(rest)),
            Text(f"{100 * rest / wall:.1f}%"),
        )
    console.print(t)


def _print_killings(console: Console, agg: Aggregates) -> None:
    """Who killed whom: processes that died of a signal another process sent, or of the OOM killer."""
    if not agg.killings_count:
        return
    console.print(Text(f"{agg.oom_kills} killed by the OOM killer"), soft_wrap=True)
    t = _table("Who killed whom", "VICTIM", "SIGNAL", "KILLED BY")
    for k in agg.killings[:SUMMARY_ROWS]:
        t.add_row(Text(f"{k.victim} ({comm_text(k.victim_comm)})"), Text(k.signal), Text(killer_words(k)))
    if agg.killings_count > SUMMARY_ROWS:
        t.add_row(Text(f"(and {agg.killings_count - SUMMARY_ROWS} more)"), Text(""), Text(""))
    console.print(t)


def render_summary(
    table: ProcessTable, stream: TextIO, color: bool, lost_by_class: Mapping[str, int], *, width: int | None = None
) -> None:
    """Counts by command, failures, signals sent, the longest- and shortest-lived
    processes and the events lost, over the whole session (processes that left
    the table included). `lost_by_class`: events lost, by EVENT_CLASSES."""
    lost = sum(lost_by_class.values())
    with _console(stream, color, width) as console:
        agg = table.aggregates
        counts = table.command_counts()
        running = sum(c.running for c in counts.values())
        zombies = sum(1 for rec in table.live() if rec.waiting)
        events = sum(agg.events.values())
        total = agg.processes + running
        console.print(
            Text(
                f"{total} processes: {agg.processes} ended, {running} still running, {zombies} zombies not reaped; "
                f"{events} events, {lost} lost",
                style="bold",
            ),
            soft_wrap=True,
        )

        commands = _table(
            "Commands",
            "COMMAND",
            "PROCESSES",
            "EXIT 0",
            "FAILED",
            "RUNNING",
            right=("PROCESSES", "EXIT 0", "FAILED", "RUNNING"),
        )
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1].processes, kv[0]))
        for comm, c in ranked[:SUMMARY_ROWS]:
            commands.add_row(Text(comm_text(comm)), *(Text(str(n)) for n in (c.processes, c.ok, c.failed, c.running)))
        rest = ranked[SUMMARY_ROWS:]
        other = agg.other_commands
        if rest or other.processes:
            folded = CommandCount(
                sum(c.processes for _, c in rest) + other.processes,
                sum(c.ok for _, c in rest) + other.ok,
                sum(c.failed for _, c in rest) + other.failed,
                running=sum(c.running for _, c in rest),
            )
            commands.add_row(
                Text("(others)"), *(Text(str(n)) for n in (folded.processes, folded.ok, folded.failed, folded.running))
            )
        console.print(commands)

        groups = table.group_counts()
        if len(groups) > 1:  # one group (or none known) says nothing the totals do not
            console.print(_group_table(groups, agg.other_groups))

        failures = _table("Failures", "FAILURE", "WHAT", "COUNT", right=("COUNT",))
        rows = sorted(agg.failures.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for (kind, what), n in rows[:SUMMARY_ROWS]:
            failures.add_row(Text(kind, style=STYLES["exit_bad"]), Text(escape_bytes(what)), Text(str(n)))
        folded_failures = sum(n for _, n in rows[SUMMARY_ROWS:]) + agg.failures.other
        if folded_failures:
            failures.add_row(Text("(others)"), Text(""), Text(str(folded_failures)))
        console.print(
            Text(
                f"{agg.nonzero_exits} non-zero exits, {agg.signal_deaths} deaths by signal, "
                f"{agg.failed_execs} failed execs"
            ),
            soft_wrap=True,
        )
        if agg.path_misses:
            # Not failures: each search found its file (tracer/model/path_search.py).
            console.print(Text(f"{path_misses_words(agg.path_misses)} folded into their execs"), soft_wrap=True)
        if rows:
            console.print(failures)

        signals = _table("Signals sent", "SIGNAL", "SENT", "BY THE KERNEL", right=("SENT", "BY THE KERNEL"))
        sent = sorted(agg.signals_sent.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for signo, n in sent:
            kernel = agg.signals_from_kernel.counts.get(signo, 0)
            signals.add_row(Text(signal_name(signo)), Text(str(n)), Text(str(kernel)))
        if sent:
            console.print(signals)
        else:
            console.print(Text("No signals sent."))
        if agg.ptrace_stops or agg.signals_suppressed or agg.deliveries_folded:
            words = folded_words(agg.ptrace_stops, agg.signals_suppressed, agg.deliveries_folded)
            console.print(Text(words), soft_wrap=True)

        longest, shortest = agg.longest(), agg.shortest()
        if longest:
            t = _table("Longest-lived", "PID", "COMMAND", "LIFETIME", "OUTCOME", right=("PID", "LIFETIME"))
            _lifetime_rows(t, longest)
            console.print(t)
            t = _table("Shortest-lived", "PID", "COMMAND", "LIFETIME", "OUTCOME", right=("PID", "LIFETIME"))
            _lifetime_rows(t, shortest)
            console.print(t)

        _print_consumers(console, agg)
        _print_killings(console, agg)
        _print_critical_path(console, table)

        if lost:
            console.print(Text(lost_summary_words(lost_by_class), style=STYLES["exit_bad"]), soft_wrap=True)
        else:
            console.print(Text("Events lost: 0"), soft_wrap=True)
