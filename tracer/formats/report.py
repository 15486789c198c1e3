"""The session as one self-contained HTML page: `--report FILE.html`.

This module owns how the process table (tracer/model/process_table.py) becomes
the data a report page shows, and how that data and the page's own script and
style (report.js, report.css beside this file) become one file. The facts and
their words are those of the other views: outcomes from words.py, each
process's life from views.timeline_lines (the lines `--timeline` prints),
escaping and shell quoting from text.py. The page adds no words of its own
about a process; it lays out these and draws the time axis.

What shapes it:

* One file, no network. The script and the style are inlined, and a
  Content-Security-Policy meta tag allows exactly those two (by their SHA-256)
  and nothing else: no remote load, no other inline script, no plugin, no form
  target. Data cannot become script even if it escaped its element.
* Hostile data stays text. Every string a process chose is escaped by text.py
  first (controls and bidi characters become visible escapes), then embedded as
  JSON inside <script type="application/json">, where `<`, `>`, `&` and the
  line separators U+2028/U+2029 are written as \\uNNNN (`embed_json`), so no
  sequence in it can close the element or open a comment. The page builds its
  DOM with textContent only.
* Size. 100,000 processes must fit in 20 MB and load in seconds, so the data is
  columnar: one array per field, one entry per process, strings interned in one
  table (a storm's thousand copies of "exit 0" are one string), times as integer
  microseconds since the session's start. The page draws only the rows in
  view (a virtual list and one canvas), never a DOM node per process.
* Rows are in tree order (a depth-first walk by birth, children by start); a
  process's parent is a row index, -1 for a root.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

from proctrace import __version__
from proctrace.formats.text import comm_text, escape_bytes, format_duration, shell_quote
from proctrace.formats.words import (
    capability_set_words,
    delivered_title,
    group_of,
    lost_summary_words,
    path_misses_words,
    process_outcome,
    sent_words,
    usage_words,
    user_name,
)
from proctrace.model.context import Credentials
from proctrace.model.critical_path import critical_path, shares
from proctrace.model.events import SIGNAL_DELIVER, errno_name
from proctrace.model.process_table import Process, ProcessTable

FORMAT = "proctrace-report"
VERSION = 1

ROLES = ("other", "exit_ok", "exit_bad", "running", "fork", "exec", "exec_failed",
         "signal_generate", "signal_deliver", "reap", "privilege", "time")  # fmt: skip
"""The colour roles of text.STYLES (and "running"), by their number in the data."""
_ROLE = {name: i for i, name in enumerate(ROLES)}
ROLE_CODES = 16
"""A life line is one number: its text's index in the string table times this, plus its role."""

# Bits of the `flags` column.
PRE_EXISTING = 1
INCOMPLETE = 2
ZOMBIE_AT_END = 4
RUNNING = 8
ON_CRITICAL_PATH = 16
FAILED = 32  # a non-zero exit, a death by signal, or a failed exec (not a PATH miss)
PRIVILEGE_GAIN = 64
CORE_DUMPED = 128
NO_START = 256  # its start is not known (its `start` delta is 0)

# The kinds of marks on a process's bar.
MARK_SIGNAL_SENT = 0
MARK_SIGNAL_DELIVERED = 1
MARK_EXEC_FAILED = 2

_ASSETS = ("report.js", "report.css")


@dataclass(frozen=True)
class SessionInfo:
    """What the report's header says of the session that made it."""

    host: str
    kernel: str
    traced: str  # "make -j2 and its descendants", "every process"
    source: str  # "live" or "recording FILE"
    started: str | None = None  # ISO 8601 UTC; None: the first event's time


def traced_words(command: list[bytes] | None) -> str:
    """What a session traced, as the report's title says it."""
    if not command:
        return "every process"
    return " ".join(shell_quote(a) for a in command) + " and its descendants"


class _Strings:
    """The string table: each distinct string once, referred to by its index."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text: str | None) -> int:
        if text is None:
            return -1
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.table)
            self.table.append(text)
        return found


def _us(ts_ns: int | None, origin: int) -> int:
    """A time as whole microseconds since the session's start; -1 when unknown."""
    return -1 if ts_ns is None else max(0, (ts_ns - origin) // 1000)


def _since(ts_ns: int | None, origin: int, start_us: int) -> int:
    """A time as microseconds since the process's start; -1 when unknown."""
    return -1 if ts_ns is None else max(0, _us(ts_ns, origin) - start_us)


def _command(rec: Process) -> str:
    """The whole command line, escaped and quoted so that it pastes back into bash."""
    return " ".join(shell_quote(a) for a in rec.argv) if rec.argv else f"[{comm_text(rec.comm)}]"


def _failed(rec: Process) -> bool:
    status = rec.status
    if status is not None and status.raw != 0:
        return True
    return any(not ex.path_search for ex in rec.failed_execs)


def _env_text(rec: Process) -> str | None:
    """The environment of its latest exec, one NAME=value a line, escaped (already redacted)."""
    ctx = rec.context
    if ctx is None or ctx.env is None:
        return None
    lines = [f"{escape_bytes(k)}={escape_bytes(v)}" for k, v in ctx.env.items()]
    if ctx.env_truncated:
        lines.append("… (cut: the environment was longer than was read)")
    return "\n".join(lines)


def _privileges(creds: Credentials | None) -> str | None:
    if creds is None:
        return None
    ids = f"uid {creds.uid}, euid {creds.euid}, gid {creds.gid}, egid {creds.egid}"
    return f"{ids}; capabilities {capability_set_words(creds.cap_effective)}"


def report_data(
    table: ProcessTable, info: SessionInfo, lost_by_class: dict[str, int], roots: list[int] | None = None
) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready object (README, "Report
    data", describes its fields)."""
    # Here, not at the top: the views load rich, which a session that only
    # names its SessionInfo (every live one and replay) should not pay for.
    from proctrace.formats.views import cwd_words, timeline_lines

    procs = table.tree_order(roots)
    origin = table.session_start()
    end = table.last_ts if table.last_ts is not None and table.last_ts >= origin else origin
    strings = _Strings()
    row_of = {rec.serial: i for i, rec in enumerate(procs)}
    index = table.children_index()

    on_path: dict[int, int] = {}  # serial -> ns on the critical path
    path_root = None
    tops = [rec for rec in procs if rec.origin_serial not in row_of]
    if len(tops) == 1 or roots:
        path_root = tops[0] if tops else None
    if path_root is not None:
        on_path = {rec.serial: ns for rec, ns in shares(critical_path(path_root, index))}

    cols: dict[str, list[int]] = {
        name: []
        for name in ("pid", "parent", "ppid", "start", "end", "reaped", "comm", "cmd", "outcome", "role", "flags",
                     "user", "cwd", "group", "cgroup", "privileges", "env", "usage", "cpu_us", "rss_kb", "children",
                     "threads", "critical_us", "life", "exec", "mark")
    }  # fmt: skip
    life_t: list[int] = []
    life_line: list[int] = []
    exec_t: list[int] = []
    exec_label: list[int] = []
    mark_t: list[int] = []
    mark_kind: list[int] = []
    mark_text: list[int] = []
    previous_start = 0
    said_creds: dict[Credentials | None, tuple[int, int]] = {}
    said_cwds: dict[tuple[bytes | None, bool, bool] | None, int] = {}
    said_cgroups: dict[bytes | None, tuple[int, int]] = {}

    for rec in procs:
        running = rec.end_ns is None and rec.reaped_ns is None and not rec.retired
        parent = row_of.get(rec.origin_serial, -1) if rec.origin_serial is not None else -1
        described, role = ("running", "running") if running else process_outcome(rec)
        status = rec.status
        flags = 0
        if rec.pre_existing:
            flags |= PRE_EXISTING
        if rec.incomplete:
            flags |= INCOMPLETE
        if rec.waiting:
            flags |= ZOMBIE_AT_END
        if running:
            flags |= RUNNING
        if rec.serial in on_path:
            flags |= ON_CRITICAL_PATH
        if _failed(rec):
            flags |= FAILED
        if rec.privilege_gain:
            flags |= PRIVILEGE_GAIN
        if status is not None and status.core_dumped:
            flags |= CORE_DUMPED
        ctx = rec.context
        usage = rec.usage
        cols["pid"].append(rec.tgid)
        cols["parent"].append(parent)
        parent_pid = procs[parent].tgid if parent >= 0 else None
        cols["ppid"].append(0 if rec.original_ppid == parent_pid else rec.original_ppid)
        start = _us(rec.start_ns or None, origin)
        if start < 0:
            flags |= NO_START
            start = previous_start
        cols["start"].append(start - previous_start)
        previous_start = start
        cols["end"].append(_since(rec.end_ns, origin, start))
        cols["reaped"].append(_since(rec.reaped_ns, origin, start))
        cols["comm"].append(strings(comm_text(rec.comm)))
        cols["cmd"].append(strings(_command(rec)))
        cols["outcome"].append(strings(described))
        cols["role"].append(_ROLE.get(role, 0))
        cols["flags"].append(flags)
        creds = rec.creds
        if creds not in said_creds:  # a session has few distinct credentials, directories and cgroups
            said_creds[creds] = (strings(None if creds is None else user_name(creds.euid)), strings(_privileges(creds)))
        user, privileges = said_creds[creds]
        cols["user"].append(user)
        cols["privileges"].append(privileges)
        where = None if ctx is None else (ctx.cwd, ctx.cwd_truncated, ctx.cwd_deleted)
        if where not in said_cwds:
            said_cwds[where] = strings(cwd_words(ctx) if ctx is not None else None)
        cols["cwd"].append(said_cwds[where])
        cgroup = table.cgroup_of(rec)
        if cgroup not in said_cgroups:
            said_cgroups[cgroup] = (
                strings(group_of(cgroup)),
                strings(None if cgroup is None else escape_bytes(cgroup)),
            )
        group, cgroup_text = said_cgroups[cgroup]
        cols["group"].append(group)
        cols["cgroup"].append(cgroup_text)
        cols["env"].append(strings(_env_text(rec)))
        cols["usage"].append(strings(usage_words(usage) if usage is not None else None))
        cols["cpu_us"].append(-1 if usage is None else (usage.cpu_user_ns + usage.cpu_sys_ns) // 1000)
        cols["rss_kb"].append(-1 if usage is None else usage.max_rss_kb)
        cols["children"].append(rec.children_count)
        cols["threads"].append(rec.threads)
        cols["critical_us"].append(on_path.get(rec.serial, 0) // 1000)

        cols["life"].append(len(life_t))
        at = start
        for ts, line_role, text in timeline_lines(table, rec, end):
            when = _us(ts, origin)
            life_t.append(when - at)
            at = when
            life_line.append(strings(text) * ROLE_CODES + _ROLE.get(line_role, 0))
        cols["exec"].append(len(exec_t))
        for ex in rec.execs:
            exec_t.append(_us(ex.ts_ns, origin) - start)
            label = " ".join(shell_quote(a) for a in ex.argv) if ex.argv else escape_bytes(ex.filename)
            exec_label.append(strings(label))
        cols["mark"].append(len(mark_t))
        marks: list[tuple[int, int, str]] = []
        for ex in rec.failed_execs:
            if not ex.path_search:  # a PATH miss is no failure: its exec's line counts it
                marks.append(
                    (ex.ts_ns, MARK_EXEC_FAILED, f"exec failed: {errno_name(ex.errno)} {escape_bytes(ex.filename)}")
                )
        for sig in rec.signals:
            if sig.stage == SIGNAL_DELIVER:
                marks.append((sig.ts_ns, MARK_SIGNAL_DELIVERED, delivered_title(sig.signo, sig.group_exit_signo)))
            else:
                sender = None if sig.sender_pid is None else str(sig.sender_pid)
                marks.append((sig.ts_ns, MARK_SIGNAL_SENT, sent_words(sig.signo, sender)))
        marks.sort(key=lambda m: m[0])
        for ts, kind, text in marks:
            mark_t.append(_us(ts, origin) - start)
            mark_kind.append(kind)
            mark_text.append(strings(text))
    for name in ("life", "exec", "mark"):
        cols[name].append({"life": len(life_t), "exec": len(exec_t), "mark": len(mark_t)}[name])

    agg = table.aggregates
    lost_total = sum(lost_by_class.values())
    session = {
        "host": escape_bytes(info.host.encode(errors="surrogateescape")),
        "kernel": escape_bytes(info.kernel.encode(errors="surrogateescape")),
        "traced": info.traced,
        "source": info.source,
        "started": info.started,
        "duration_us": _us(end, origin),
        "duration": format_duration(max(0, end - origin)),
        "proctrace": __version__,
    }
    counts = {
        # As the summary counts them: every process that ended, and those seen still running.
        "processes": agg.processes + sum(c.running for c in table.command_counts().values()),
        "in_report": len(procs),
        "left_out": table.dropped,
        "events": sum(agg.events.values()),
        # As --summary counts them: over every process of the session, those the
        # table let go included.
        "failures": {
            "non-zero exit": agg.nonzero_exits,
            "killed by a signal": agg.signal_deaths - agg.oom_kills,
            "killed by the OOM killer": agg.oom_kills,
            "failed exec": agg.failed_execs,
        },
        "path_misses": path_misses_words(agg.path_misses) if agg.path_misses else None,
        "signals_sent": sum(agg.signals_sent.counts.values()) + agg.signals_sent.other,
        "lost": dict(lost_by_class),
        "lost_total": lost_total,
        "lost_words": lost_summary_words(lost_by_class) if lost_total else None,
    }
    critical = None
    if path_root is not None and on_path:
        critical = {"root": row_of[path_root.serial], "total_us": sum(on_path.values()) // 1000}
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": session,
        "counts": counts,
        "critical_path": critical,
        "roles": list(ROLES),
        "role_codes": ROLE_CODES,
        "strings": strings.table,
        "processes": cols,
        "life": {"t": life_t, "line": life_line},
        "execs": {"t": exec_t, "label": exec_label},
        "marks": {"t": mark_t, "kind": mark_kind, "text": mark_text},
    }


# ---------------------------------------------------------------------------
# The page

# In a script element only "</script" (any case) and "<!--" end or confuse the
# data; escaping every <, > and & rules out both, and the JSON stays the same
# JSON. U+2028 and U+2029 are escaped so that the data is also valid JavaScript.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def embed_json(data: Any) -> str:
    """`data` as JSON that is inert inside an HTML <script> element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_SCRIPT_SAFE)


def _asset(name: str) -> str:
    return resources.files("proctrace.formats").joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def render_html(data: dict[str, Any]) -> str:
    """The whole page: data, script and style inline, allowed by hash alone."""
    script, style = (_asset(name) for name in _ASSETS)
    csp = (
        "default-src 'none'; "
        f"script-src '{_sha256(script)}'; "
        f"style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = f"proctrace report: {data['session']['traced']} on {data['session']['host']}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_attr(csp)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_attr(title)}</title>\n"
        f"<style>{style}</style>\n"
        "</head>\n<body>\n"
        "<noscript>This report draws itself with JavaScript, which is off.</noscript>\n"
        f'<script type="application/json" id="proctrace-data">{embed_json(data)}</script>\n'
        f"<script>{script}</script>\n"
        "</body>\n</html>\n"
    )


def write_report(path: str, force: bool, data: dict[str, Any]) -> int:
    """Write the page to `path` (0600, never through a link, not over a file
    unless `force`); returns its size in bytes."""
    from proctrace.formats.recording import create_private_file

    page = render_html(data).encode("utf-8", "surrogateescape")
    fd = create_private_file(path, force)
    with os.fdopen(fd, "wb") as out:
        out.write(page)
    return len(page)
