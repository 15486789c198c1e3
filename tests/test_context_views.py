"""Where and as whom processes run, through the process table and into the
views: contexts kept per process, credentials passed on at fork and changed by
cred events, cgroups learnt from execs and cgroup events; the tree and the
timeline saying a directory or user only where it differs from the parent's,
gains of privilege flagged, the summary and the Chrome trace grouping by
container or unit. Synthetic events, no root."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import pytest
from proctrace.formats import words
from proctrace.formats.chrome_trace import NO_GROUP, export_chrome_trace
from proctrace.formats.text import ansi_codes
from proctrace.formats.views import render_summary, render_timeline, render_tree, timeline_json
from proctrace.model.clock import Clock
from proctrace.model.context import ALL_CAPABILITIES, ProcessContext
from proctrace.model.events import Event
from proctrace.model.process_table import ProcessTable, group_key
from proctrace.model.procsnap import ProcInfo

from tests.synthetic import (
    INIT,
    MS,
    SHELL,
    SHELL_START,
    cgroup_made,
    context,
    cred,
    creds,
    execve,
    exit_,
    fork,
    reap,
)

T0 = 1_000 * MS
USER = creds(1000)
ROOT = creds(0, caps=ALL_CAPABILITIES)
NOBODY_HERE = 4_000_123  # a uid no user database of a test machine names
DAEMON = creds(NOBODY_HERE, uid=NOBODY_HERE)
SESSION = b"/user.slice/user-1000.slice/session-2.scope"
CONTAINER = "3f4e5a6b7c8d" + "9" * 52
IN_CONTAINER = f"/system.slice/docker-{CONTAINER}.scope".encode()
SESSION_ID, CONTAINER_ID = 5, 7
S200, S201, S301, S302, S202 = (T0 + n * MS - 10_000 for n in (1, 2, 3, 4, 5))


@dataclass(slots=True)
class SnapshotWithContext(ProcInfo):
    """A snapshot entry as tracer/model/procsnap.py gives it once it reads contexts."""

    context: ProcessContext | None = None


SHELL_CONTEXT = context(b"/home/u", now=USER, cgroup=SESSION)


def session_events() -> list[Event]:
    return [
        cgroup_made(T0, CONTAINER_ID, IN_CONTAINER),
        # 200: ls, where the shell is and as the shell's user: nothing to say
        fork(T0 + 1 * MS, 200, cgroup_id=SESSION_ID),
        execve(T0 + 1 * MS + 10, 200, S200, [b"ls"], context=context(now=USER, cgroup=SESSION), cgroup_id=SESSION_ID),
        exit_(T0 + 1 * MS + 20, 200, S200),
        reap(T0 + 1 * MS + 30, 200),
        # 201: sudo in /tmp gains root; its fork 301 (no exec) and 301's child 302 stay there, as root
        fork(T0 + 2 * MS, 201, cgroup_id=SESSION_ID),
        execve(
            T0 + 2 * MS + 10,
            201,
            S201,
            [b"sudo", b"id"],
            context=context(b"/tmp", now=ROOT, before=USER, cgroup=SESSION),
            cgroup_id=SESSION_ID,
        ),
        fork(T0 + 3 * MS, 301, by=201, start=S201, ppid=SHELL, cgroup_id=SESSION_ID, comm=b"sudo"),
        fork(T0 + 4 * MS, 302, by=301, start=S301, ppid=201, cgroup_id=SESSION_ID, comm=b"sudo"),
        execve(T0 + 4 * MS + 10, 302, S302, [b"id"], ppid=301, context=context(b"/tmp", now=ROOT, cgroup=SESSION)),
        # 202: nginx in a container (its exec's cgroup unknown: the id says it), then drops root
        fork(T0 + 5 * MS, 202, cgroup_id=SESSION_ID),
        execve(T0 + 5 * MS + 10, 202, S202, [b"nginx"], context=context(b"/", now=ROOT), cgroup_id=CONTAINER_ID),
        cred(T0 + 6 * MS, 202, S202, ROOT, DAEMON, syscall="setresuid", comm=b"nginx"),
    ]


@pytest.fixture(autouse=True)
def users(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user database of root alone, whatever the machine's."""

    def getpwuid(uid: int):
        if uid != 0:
            raise KeyError(uid)
        return type("pw", (), {"pw_name": "root"})

    monkeypatch.setattr(words.pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(words, "_user_names", {})


@pytest.fixture
def table() -> ProcessTable:
    t = ProcessTable()
    t.seed([SnapshotWithContext(SHELL, INIT, 1000, b"sh", [b"-sh"], SHELL_START, 1, context=SHELL_CONTEXT)])
    t.write(session_events())
    return t


def only(t: ProcessTable, pid: int):
    (rec,) = t.find(pid)
    return rec


def test_each_process_keeps_its_latest_context_and_its_current_credentials(table) -> None:
    assert only(table, SHELL).context == SHELL_CONTEXT  # from the snapshot
    assert only(table, 201).context.cwd == b"/tmp"
    assert only(table, 301).context is None  # no exec: a fork does not say where it runs
    assert only(table, 301).creds == ROOT  # but it copies the credentials
    nginx = only(table, 202)
    assert nginx.creds == DAEMON and [c.syscall for c in nginx.cred_changes] == ["setresuid"]
    assert only(table, 201).privilege_gain and not only(table, 200).privilege_gain
    assert not nginx.privilege_gain  # dropping root is no gain


def test_cgroup_paths_come_from_execs_and_cgroup_events_and_group_every_process(table) -> None:
    assert (table.cgroups.path_of(CONTAINER_ID), table.cgroups.path_of(SESSION_ID)) == (IN_CONTAINER, SESSION)
    assert table.group_of(only(table, 202)) == ("container", CONTAINER.encode())
    assert table.group_of(only(table, 301)) == ("unit", b"session-2.scope")  # its fork's cgroup
    assert table.group_of(only(table, SHELL)) == ("unit", b"session-2.scope")
    counts = table.group_counts()
    assert {k: (c.processes, c.ok, c.running) for k, c in counts.items()} == {
        ("unit", b"session-2.scope"): (5, 1, 4),
        ("container", CONTAINER.encode()): (1, 0, 1),
    }


def test_group_keys_follow_the_cgroup_rules() -> None:
    assert group_key(None) is None and group_key(b"/") is None and group_key(b"/user.slice") is None
    assert group_key(b"/system.slice/nginx.service") == ("unit", b"nginx.service")
    assert words.group_words(group_key(IN_CONTAINER)) == "container 3f4e5a6b7c8d"


def tree_text(t: ProcessTable) -> str:
    out = io.StringIO()
    render_tree(t, out, color=False, width=200)
    return out.getvalue()


def test_the_tree_says_directory_and_user_only_where_they_change_and_flags_gains(table) -> None:
    lines = {int(re.search(r"\d+", line).group()): line for line in tree_text(table).splitlines()}
    # The top: its parent is unknown
    assert lines[SHELL].endswith("running 1.00s  (cwd /home/u, user 1000, pre-existing)")
    assert lines[200].endswith("200 ls  10.0µs  exit 0")
    assert lines[201].endswith("(cwd /tmp, user root)  privilege gain: euid 1000->0, +all capabilities")
    assert lines[301].endswith("301 sudo id  running 3.0ms")  # no exec of its own: where its parent is
    assert lines[302].endswith("302 id  running 2.0ms")  # as its grandparent: 301 runs there too
    assert lines[202].endswith(f"(cwd /, user {NOBODY_HERE})")


def test_a_tree_without_contexts_says_none_of_it() -> None:
    # A recording from before contexts: nothing known, nothing said.
    t = ProcessTable()
    t.write([fork(T0 + MS, 200), execve(T0 + MS + 10, 200, S200, [b"ls"]), exit_(T0 + MS + 20, 200, S200)])
    assert "cwd" not in tree_text(t) and "user" not in tree_text(t)


def timeline_text(t: ProcessTable, pids: list[int]) -> str:
    out = io.StringIO()
    render_timeline(t, pids, out, color=False)
    return out.getvalue()


def test_the_timeline_heads_say_what_changed_and_exec_and_cred_lines_say_gains_and_changes(table) -> None:
    text = timeline_text(table, [201, 202, 301])
    assert "201 sudo  parent 100  cwd /tmp  user root\n" in text
    assert "exec /usr/bin/sudo sudo id (privilege gain: euid 1000->0, +all capabilities)\n" in text
    assert "\n301 sudo  parent 201\n" in text
    assert f"202 nginx  parent 100  cwd /  user {NOBODY_HERE}\n" in text
    change = f"credentials: setresuid: uid,gid,egid,sgid,fsgid 1000->{NOBODY_HERE}, euid,suid,fsuid 0->{NOBODY_HERE}"
    assert change + ", caps all->none\n" in text


def test_timeline_colours_a_gain_as_privilege(table) -> None:
    out = io.StringIO()
    render_timeline(table, [201], out, color=True)
    on, _ = ansi_codes()["privilege"]
    assert f"{on}exec /usr/bin/sudo sudo id (privilege gain" in out.getvalue()


def test_timeline_json_carries_the_context_the_credentials_and_their_changes(table) -> None:
    records = {r["pid"]: r for r in json.loads(json.dumps(timeline_json(table, None)))}
    sudo = records[201]
    assert (sudo["cwd"], sudo["euid"], sudo["privilege_gain"], sudo["container_id"]) == ("/tmp", 0, True, None)
    assert sudo["unit"] == "session-2.scope" and sudo["creds_before"]["euid"] == 1000
    assert [ex["privilege_gain"] for ex in sudo["execs"]] == [True]
    assert sudo["cgroup_id"] == SESSION_ID
    assert "cwd" not in records[301] and records[301]["creds"]["euid"] == 0
    nginx = records[202]
    assert nginx["euid"] == 0 and nginx["creds"]["euid"] == NOBODY_HERE  # the exec's, and now
    (change,) = nginx["cred_changes"]
    assert (change["syscall"], change["after"]["euid"], change["privilege_gain"]) == ("setresuid", NOBODY_HERE, False)


def summary_text(t: ProcessTable) -> str:
    out = io.StringIO()
    render_summary(t, out, color=False, lost_by_class={}, width=120)
    return out.getvalue()


def test_the_summary_counts_by_container_or_unit_when_there_are_several(table) -> None:
    text = summary_text(table)
    assert "By container or unit" in text
    rows = [line.split() for line in text.splitlines() if "session-2.scope" in line or "container 3f4e" in line]
    assert rows == [["session-2.scope", "5", "1", "0", "4"], ["container", "3f4e5a6b7c8d", "1", "0", "0", "1"]]


def test_the_summary_has_no_group_table_with_one_group() -> None:
    t = ProcessTable()
    ls = execve(T0 + MS + 10, 200, S200, [b"ls"], context=context(cgroup=SESSION), cgroup_id=SESSION_ID)
    t.write([fork(T0 + MS, 200, cgroup_id=SESSION_ID), ls])
    assert "By container or unit" not in summary_text(t)


def test_the_summary_folds_groups_beyond_its_rows_and_counts_those_in_neither_apart() -> None:
    t = ProcessTable()
    events: list[Event] = []
    for n in range(22):  # unit-0 with 22 processes ... unit-21 with 1
        for k in range(22 - n):
            pid, at = 1000 + 100 * n + k, T0 + (100 * n + k) * MS
            unit = f"/system.slice/unit-{n}.service".encode()
            events += [fork(at, pid), execve(at + 10, pid, at - 10_000, [b"x"], context=context(cgroup=unit))]
    t.write(events)
    text = summary_text(t)
    rows = {
        line.split()[0]: line.split()[1:]
        for line in text.splitlines()
        if line.startswith(("unit-", "(others)", "(neither"))
    }
    assert rows["unit-0.service"] == ["22", "0", "0", "22"]
    assert "unit-19.service" in rows and "unit-20.service" not in rows  # 20 rows, then the rest in one
    assert rows["(others)"] == ["3", "0", "0", "3"]  # unit-20 (2) and unit-21 (1)
    assert rows["(neither,"] == ["or", "not", "known)", "1", "0", "0", "1"]  # the shell: no cgroup known


def trace(t: ProcessTable) -> dict:
    out = io.StringIO()
    export_chrome_trace(t, out, Clock(0))
    return json.loads(out.getvalue())


def test_the_chrome_trace_groups_tracks_by_container_or_unit(table) -> None:
    doc = trace(table)
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    order = sorted((e["args"]["sort_index"], e["pid"]) for e in meta if e["name"] == "process_sort_index")
    labels = {e["pid"]: e["args"]["labels"] for e in meta if e["name"] == "process_labels"}
    groups = [labels[pid].split(", ")[0] for _, pid in order]
    assert groups == ["session-2.scope"] * 5 + ["container 3f4e5a6b7c8d"]  # contiguous, first seen first
    assert [pid for _, pid in order][:5] == [SHELL, 200, 201, 301, 302]  # the tree's order within a group
    assert doc["otherData"]["groups"] == {"session-2.scope": 5, "container 3f4e5a6b7c8d": 1}
    lifetimes = {e["pid"]: e["args"] for e in doc["traceEvents"] if e.get("cat") == "process"}
    assert lifetimes[202]["group"] == "container 3f4e5a6b7c8d"


def test_a_process_in_neither_is_labelled_so_and_one_group_is_not_labelled_at_all() -> None:
    t = ProcessTable()
    t.write([
        fork(T0 + MS, 200), execve(T0 + MS + 10, 200, S200, [b"ls"], context=context(cgroup=b"/")),
        fork(T0 + 2 * MS, 201), execve(T0 + 2 * MS + 10, 201, S201, [b"ls"], context=context(cgroup=SESSION)),
    ])  # fmt: skip
    doc = trace(t)
    assert doc["otherData"]["groups"] == {NO_GROUP: 2, "session-2.scope": 1}  # 100 (sh) is in neither known
    alone = ProcessTable()
    only_session = context(cgroup=SESSION)
    alone.write(
        [
            fork(T0 + MS, 200, cgroup_id=SESSION_ID),
            execve(T0 + MS + 10, 200, S200, [b"ls"], context=only_session, cgroup_id=SESSION_ID),
        ]
    )
    doc = trace(alone)
    assert "groups" not in doc["otherData"]
    assert not any("session" in json.dumps(e) for e in doc["traceEvents"] if e["ph"] == "M")
