"""The Chrome Trace Event export on a synthetic session: the JSON structure that
Perfetto UI and chrome://tracing need (keys per phase, nesting, order, tracks in
tree order), the facts carried in args, and hostile strings. No root needed."""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from typing import Any

import pytest
from proctrace.formats.chrome_trace import COUNTERS_PID, PID_MAX_LIMIT, export_chrome_trace
from proctrace.model.clock import Clock
from proctrace.model.events import (
    CLONE_THREAD,
    Event,
    WaitStatus,
)
from proctrace.model.path_search import mark_path_searches
from proctrace.model.process_table import ProcessTable
from proctrace.model.procsnap import ProcInfo

from tests.synthetic import INIT, MS, SHELL, SHELL_START, deliver, execve, exit_, exited, fork, generate, reap

US = 1_000
T0 = 1_000 * MS  # the session's first event
CLOCK = Clock(1_700_000_000 * 10**9)  # realtime - monotonic: a fixed wall-clock origin
SIGTERM, ENOENT = 15, 2
REQUIRED = {
    "X": {"name", "ph", "ts", "dur", "pid", "tid"},
    "i": {"name", "ph", "ts", "pid", "tid", "s"},
    "M": {"name", "ph", "pid", "args"},
    "C": {"name", "ph", "ts", "pid", "args"},
}

# -- the session ---------------------------------------------------------------
#
# 100 sh (pre-existing, runs throughout)
# ├── 200 sh -c ... -> exec chain: sh, then true a b; forks 300; exit 0, reaped
# │   └── 300 sleep 1000, with a second thread; still running at the end
# ├── 201 sleep 100: SIGTERM from 100, killed; reaped 0.5 ms later
# ├── 202 exec of /nonexistent fails (ENOENT), then false: exit 1, never reaped
# ├── 203 hostile comm and argv (invalid UTF-8, terminal escapes, emoji, quotes)
# └── 200 again (pid reused): echo, exit 0, reaped
# 150 server (pre-existing, no event at all)

HOSTILE_COMM = b"\x1b]0;pwn\x07\xff"
HOSTILE_ARGV = [
    b"\x1b[31mred\x1b[0m",
    b"\xff\xfe\xc3(",
    "emoji \U0001f600 and \u202eRTL".encode(),
    b'tab\there "quoted" back\\slash\nnewline',
    b"\x00nul",
]
SNAPSHOT = [
    ProcInfo(SHELL, INIT, 1000, b"sh", [b"-sh"], start_ns=SHELL_START, threads=1),
    ProcInfo(150, INIT, 0, b"server", [b"server", b"--port=80"], start_ns=2 * MS, threads=4),
]
S200, S201, S202, S203, S300, S200B = (T0 + n * MS - 10 * US for n in (1, 3, 5, 7, 2, 9))
END = T0 + 20 * MS


def session_events() -> list[Event]:
    return [
        generate(T0, 999_999, 0),  # the session's first event: nothing traced is touched
        fork(T0 + 1 * MS, 200),
        execve(T0 + 1 * MS + 100 * US, 200, S200, [b"sh", b"-c", b"true a b"], filename=b"/bin/sh"),
        fork(T0 + 2 * MS, 300, by=200, start=S200, ppid=SHELL),
        execve(T0 + 2 * MS + 50 * US, 300, S300, [b"sleep", b"1000"], ppid=200),
        fork(T0 + 2 * MS + 80 * US, 301, by=300, start=S300, ppid=200, flags=CLONE_THREAD, comm=b"sleep"),
        execve(T0 + 2 * MS + 500 * US, 200, S200, [b"true", b"a", b"b"]),
        exit_(T0 + 2 * MS + 900 * US, 200, S200, comm=b"true"),
        reap(T0 + 2 * MS + 950 * US, 200),
        fork(T0 + 3 * MS, 201),
        execve(T0 + 3 * MS + 100 * US, 201, S201, [b"sleep", b"100"]),
        generate(T0 + 4 * MS, 201, SIGTERM),
        deliver(T0 + 4 * MS + 10 * US, 201, S201, SIGTERM),
        exit_(T0 + 4 * MS + 20 * US, 201, S201, WaitStatus(SIGTERM), comm=b"sleep"),
        reap(T0 + 4 * MS + 520 * US, 201, WaitStatus(SIGTERM)),
        fork(T0 + 5 * MS, 202),
        execve(T0 + 5 * MS + 100 * US, 202, S202, [b"nonexistent", b"x"], errno=ENOENT, filename=b"/nonexistent"),
        execve(T0 + 5 * MS + 200 * US, 202, S202, [b"false"]),
        exit_(T0 + 5 * MS + 300 * US, 202, S202, exited(1), comm=b"false"),
        fork(T0 + 7 * MS, 203),
        execve(T0 + 7 * MS + 100 * US, 203, S203, HOSTILE_ARGV, filename=b"/tmp/\x1b[2J\xff", comm=HOSTILE_COMM),
        exit_(T0 + 7 * MS + 200 * US, 203, S203, comm=HOSTILE_COMM),
        reap(T0 + 7 * MS + 300 * US, 203),
        fork(T0 + 9 * MS, 200),
        execve(T0 + 9 * MS + 100 * US, 200, S200B, [b"echo", b"hi"]),
        exit_(T0 + 9 * MS + 200 * US, 200, S200B, comm=b"echo"),
        reap(T0 + 9 * MS + 300 * US, 200),
        generate(END, 999_999, 0),  # the last event
    ]


def session_table() -> ProcessTable:
    table = ProcessTable()
    table.seed(SNAPSHOT)
    table.write(session_events())
    return table


def export(table: ProcessTable, roots: list[int] | None = None) -> tuple[str, dict[str, Any], int]:
    out = io.StringIO()
    count = export_chrome_trace(table, out, CLOCK, roots)
    text = out.getvalue()
    return text, json.loads(text), count


@pytest.fixture(scope="module")
def trace() -> dict[str, Any]:
    return export(session_table())[1]


def rel_us(ts_ns: int) -> float:
    return (ts_ns - T0) / 1000


def meta(trace: dict[str, Any], name: str) -> dict[int, dict[str, Any]]:
    return {e["pid"]: e["args"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == name}


def track_of(trace: dict[str, Any], pid: int, nth: int = 0) -> int:
    """The trace pid of the nth process (by start) that held `pid`."""
    lives = [e for e in trace["traceEvents"] if e.get("cat") == "process" and e["args"]["pid"] == pid]
    lives.sort(key=lambda e: e["ts"])
    return lives[nth]["pid"]


def events_of(trace: dict[str, Any], track: int, cat: str) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["pid"] == track and e.get("cat") == cat]


def life(trace: dict[str, Any], track: int) -> dict[str, Any]:
    (event,) = events_of(trace, track, "process")
    return event


# -- the file ------------------------------------------------------------------


def test_output_is_a_json_object_with_events_time_unit_and_wall_clock_origin():
    text, trace, count = export(session_table())
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert trace["displayTimeUnit"] == "ms"
    assert count == len(trace["traceEvents"]) > 0
    other = trace["otherData"]
    assert other["origin_time"] == CLOCK.iso(T0)
    assert other["origin_wall_ns"] == CLOCK.wall_ns(T0)
    assert other["origin_monotonic_ns"] == T0
    assert other["duration_ns"] == END - T0
    assert other["processes"] == 8
    assert text.isascii()


def test_every_event_has_the_keys_its_phase_requires(trace):
    phases = defaultdict(int)
    for event in trace["traceEvents"]:
        phases[event["ph"]] += 1
        assert REQUIRED[event["ph"]] <= set(event), event
        assert isinstance(event["name"], str) and event["name"]
        assert isinstance(event["pid"], int) and isinstance(event.get("tid", 0), int)
        if event["ph"] == "i":
            assert event["s"] in ("t", "p", "g")
        if event["ph"] in ("X", "i"):
            assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0
            assert isinstance(event.get("args", {}), dict)
    assert set(phases) == {"X", "i", "M", "C"}


def test_durations_are_non_negative_and_slices_end_by_the_last_event(trace):
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            assert event["dur"] >= 0
            assert event["ts"] + event["dur"] <= rel_us(END)


def test_timed_events_come_in_time_order_after_the_metadata(trace):
    phases = [e["ph"] for e in trace["traceEvents"]]
    first_timed = next(i for i, ph in enumerate(phases) if ph != "M")
    assert "M" not in phases[first_timed:]
    stamps = [e["ts"] for e in trace["traceEvents"][first_timed:]]
    assert stamps == sorted(stamps)


def test_slices_on_a_track_nest_or_are_disjoint_in_float_arithmetic(trace):
    by_track = defaultdict(list)
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            by_track[(event["pid"], event["tid"])].append(event)
    for slices in by_track.values():
        stack: list[float] = []  # ends of the open slices
        for event in slices:  # file order: a parent before what it contains
            start, end = event["ts"], event["ts"] + event["dur"]
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], (event, stack)
            stack.append(end)


def test_timestamps_keep_nanosecond_precision(trace):
    shell_child = life(trace, track_of(trace, 201))
    assert shell_child["ts"] == rel_us(S201)
    assert round(shell_child["ts"] * 1000) == S201 - T0
    assert round(shell_child["dur"] * 1000) == (T0 + 4 * MS + 20 * US) - S201


def test_empty_table_gives_a_valid_trace_without_events():
    _, trace, count = export(ProcessTable())
    assert count == 0 and trace["traceEvents"] == []
    assert trace["otherData"]["processes"] == 0


# -- tracks --------------------------------------------------------------------


def test_each_process_has_its_own_track_named_with_its_parent_and_command_line(trace):
    names = meta(trace, "process_name")
    assert names[track_of(trace, SHELL)]["name"] == "sh [100] ← 1 · -sh"
    assert names[track_of(trace, 300)]["name"] == "sleep [300] ← 200 · sleep 1000"
    assert names[track_of(trace, 201)]["name"] == "sleep [201] ← 100 · sleep 100"
    assert names[track_of(trace, 200)]["name"] == "true [200] ← 100 · true a b"
    threads = meta(trace, "thread_name")
    assert threads[track_of(trace, 201)] == {"name": "sleep"}
    lives = [e for e in trace["traceEvents"] if e.get("cat") == "process"]
    assert len({e["pid"] for e in lives}) == len(lives) == 8
    assert all(e["tid"] == e["pid"] for e in lives)


def test_process_sort_index_walks_the_tree_depth_first(trace):
    order = meta(trace, "process_sort_index")
    real = {e["pid"]: e["args"]["pid"] for e in trace["traceEvents"] if e.get("cat") == "process"}
    by_index = sorted(order, key=lambda pid: order[pid]["sort_index"])
    assert [real[pid] for pid in by_index] == [150, SHELL, 200, 300, 201, 202, 203, 200]
    assert sorted(o["sort_index"] for o in order.values()) == list(range(8))  # roots by start


def test_a_reused_pid_gets_a_second_track_above_any_real_pid(trace):
    first, second = track_of(trace, 200, 0), track_of(trace, 200, 1)
    assert first == 200 and second == PID_MAX_LIMIT
    assert life(trace, second)["args"]["trace_pid"] == PID_MAX_LIMIT
    assert meta(trace, "process_name")[second]["name"] == "echo [200] ← 100 · echo hi"


def test_roots_export_only_those_subtrees():
    _, trace, _ = export(session_table(), roots=[200])
    real = sorted(e["args"]["pid"] for e in trace["traceEvents"] if e.get("cat") == "process")
    assert real == [200, 200, 300]
    assert {e["pid"] for e in trace["traceEvents"]} == {200, 300, PID_MAX_LIMIT, COUNTERS_PID}
    assert trace["otherData"]["roots"] == [200]
    order = meta(trace, "process_sort_index")
    assert [order[p]["sort_index"] for p in (200, 300, PID_MAX_LIMIT)] == [0, 1, 2]


# -- lifetimes and execs -------------------------------------------------------


def test_exec_chain_is_nested_slices_from_each_exec_to_the_next_or_the_end(trace):
    track = track_of(trace, 200)
    process = life(trace, track)
    execs = events_of(trace, track, "exec")
    assert [e["name"] for e in execs] == ["sh -c 'true a b'", "true a b"]
    assert execs[0]["args"] == {"filename": "/bin/sh", "argv": ["sh", "-c", "true a b"]}
    assert execs[1]["args"]["argv"] == ["true", "a", "b"]
    assert execs[0]["ts"] == rel_us(T0 + 1 * MS + 100 * US)
    assert execs[0]["ts"] + execs[0]["dur"] == pytest.approx(execs[1]["ts"])
    assert execs[1]["ts"] + execs[1]["dur"] <= process["ts"] + process["dur"]
    assert execs[1]["ts"] + execs[1]["dur"] == pytest.approx(rel_us(T0 + 2 * MS + 900 * US))
    assert process["ts"] <= execs[0]["ts"]


def test_lifetime_slice_carries_exit_status_lifetime_zombie_time_and_reaper(trace):
    process = life(trace, track_of(trace, 200))
    assert process["name"] == "true: exit 0"
    assert process["ts"] == rel_us(S200)
    assert process["dur"] == pytest.approx(rel_us(T0 + 2 * MS + 900 * US) - rel_us(S200))
    args = process["args"]
    assert (args["exit_code"], args["signal"], args["core_dumped"], args["status"]) == (0, None, False, 0)
    assert args["lifetime_ns"] == T0 + 2 * MS + 900 * US - S200
    assert args["zombie_ns"] == 50 * US and args["zombie"] == "50.0µs"
    assert (args["reaper"], args["running"], args["pre_existing"]) == (SHELL, False, False)
    assert args["started"] == CLOCK.iso(S200)


def test_signal_death_shows_in_the_slice_and_as_instants(trace):
    track = track_of(trace, 201)
    process = life(trace, track)
    assert process["name"] == "sleep: killed by SIGTERM"
    assert (process["args"]["exit_code"], process["args"]["signal"]) == (None, "SIGTERM")
    sent, delivered = events_of(trace, track, "signal")
    assert (sent["ph"], sent["s"], sent["tid"]) == ("i", "t", track)
    assert sent["name"] == "SIGTERM from 100" and sent["ts"] == rel_us(T0 + 4 * MS)
    assert sent["args"] == {
        "signal": "SIGTERM",
        "signo": 15,
        "stage": "generate",
        "sender_pid": 100,
        "result": "delivered",
    }
    assert delivered["name"] == "SIGTERM delivered" and delivered["args"]["handler"] == "default"


def test_failed_exec_is_an_instant_with_errno_filename_and_argv(trace):
    track = track_of(trace, 202)
    (failed,) = events_of(trace, track, "exec_failed")
    assert failed["ph"] == "i" and failed["name"] == "exec failed: ENOENT"
    assert failed["ts"] == rel_us(T0 + 5 * MS + 100 * US)
    assert failed["args"] == {"filename": "/nonexistent", "argv": ["nonexistent", "x"], "errno": "ENOENT"}
    assert [e["name"] for e in events_of(trace, track, "exec")] == ["false"]


def test_zombie_is_a_slice_from_exit_to_reap(trace):
    track = track_of(trace, 201)
    process = life(trace, track)
    (zombie,) = events_of(trace, track, "zombie")
    assert zombie["name"] == "zombie, reaped by 100"
    assert zombie["ts"] == rel_us(T0 + 4 * MS + 20 * US) >= process["ts"] + process["dur"]
    assert zombie["dur"] == pytest.approx(0.5 * 1000)
    assert zombie["args"] == {"reaped": True, "zombie_at_end": False, "reaper": 100, "zombie_ns": 500 * US}


def test_unreaped_zombie_lasts_until_the_last_event(trace):
    track = track_of(trace, 202)
    process = life(trace, track)
    assert process["name"] == "false: exit 1" and process["args"]["exit_code"] == 1
    assert process["args"]["zombie_at_end"] is True
    (zombie,) = events_of(trace, track, "zombie")
    assert zombie["name"] == "zombie, not reaped"
    assert zombie["ts"] + zombie["dur"] == pytest.approx(rel_us(END))
    assert zombie["args"]["zombie_so_far_ns"] == END - (T0 + 5 * MS + 300 * US)
    assert "zombie" in meta(trace, "process_labels")[track]["labels"]


def test_pre_existing_processes_start_at_the_session_start(trace):
    for pid in (SHELL, 150):
        process = life(trace, track_of(trace, pid))
        assert process["ts"] == 0 and process["args"]["pre_existing"] is True
        assert process["args"]["running"] is True
        assert process["dur"] == rel_us(END)
    server = life(trace, track_of(trace, 150))
    assert server["args"]["argv"] == ["server", "--port=80"] and server["args"]["threads"] == 4
    assert meta(trace, "process_labels")[150] == {"labels": "pre-existing, running"}


def test_running_process_lasts_until_the_last_event_with_its_threads(trace):
    track = track_of(trace, 300)
    process = life(trace, track)
    assert process["name"] == "sleep: running"
    assert process["args"]["running"] is True and process["args"]["pre_existing"] is False
    assert process["ts"] + process["dur"] == pytest.approx(rel_us(END))
    assert process["args"]["running_for_ns"] == END - S300
    assert (process["args"]["threads"], process["args"]["live_tids"]) == (2, [301])
    assert "exit_code" not in process["args"] and "lifetime_ns" not in process["args"]
    (exec_slice,) = events_of(trace, track, "exec")
    assert exec_slice["ts"] + exec_slice["dur"] <= process["ts"] + process["dur"]


def test_process_seen_only_at_its_reap_spans_from_the_session_start_to_the_reap():
    table = ProcessTable()
    table.write([generate(T0, 999_999, 0), reap(T0 + 2 * MS, 400, exited(3)), generate(T0 + 3 * MS, 999_999, 0)])
    _, trace, _ = export(table)
    process = life(trace, 400)
    assert process["ts"] == 0 and process["dur"] == rel_us(T0 + 2 * MS)
    assert process["name"] == "?: exit 3"
    args = process["args"]
    assert (args["pre_existing"], args["exit_seen"], args["exit_code"], args["reaper"]) == (True, False, 3, SHELL)
    assert "start_ns" not in args and "started" not in args
    (reaped,) = events_of(trace, 400, "reap")
    assert (reaped["ph"], reaped["name"], reaped["ts"]) == ("i", "reaped by 100", rel_us(T0 + 2 * MS))


def test_process_whose_reap_was_not_seen_ends_at_its_exit_without_a_zombie_slice():
    start = T0 + 1 * MS - 10 * US
    table = ProcessTable()
    table.write(
        [
            fork(T0 + 1 * MS, 200),
            execve(T0 + 1 * MS + 100 * US, 200, start, [b"true"]),
            exit_(T0 + 2 * MS, 200, start, comm=b"true"),
            fork(T0 + 5 * MS, 200),  # the pid held again: the first holder's reap went unseen
        ]
    )
    _, trace, _ = export(table)
    first = life(trace, 200)
    assert first["name"] == "true: exit 0" and first["dur"] == rel_us(T0 + 2 * MS) - rel_us(start)
    assert "reaper" not in first["args"] and first["args"]["zombie_at_end"] is False
    assert events_of(trace, 200, "zombie") == []
    second = life(trace, PID_MAX_LIMIT)
    assert second["args"]["pid"] == 200 and second["args"]["running"] is True


def test_child_started_just_before_the_first_event_its_fork_sets_the_origin():
    start = T0 - 10 * US  # the kernel stamps the child's start before the fork event
    table = ProcessTable()
    table.write([fork(T0, 200), execve(T0 + 100 * US, 200, start, [b"true"]), exit_(T0 + MS, 200, start)])
    _, trace, _ = export(table)
    process = life(trace, 200)
    assert process["ts"] == 0 and process["dur"] == rel_us(T0 + MS) - rel_us(start)
    assert process["args"]["pre_existing"] is False
    assert trace["otherData"]["origin_monotonic_ns"] == start


def test_slice_end_rounding_up_in_floats_is_kept_before_the_next_slice():
    # 0.1 + 0.2 > 0.3 in floats: a lifetime of 200 ns starting 100 ns in would
    # end after the zombie slice that starts at its exit.
    table = ProcessTable()
    table.write(
        [
            generate(T0, 999_999, 0),
            fork(T0 + 100, 200),
            exit_(T0 + 300, 200, T0 + 100),
            reap(T0 + 500, 200),
        ]
    )
    _, trace, _ = export(table)
    process = life(trace, 200)
    (zombie,) = events_of(trace, 200, "zombie")
    assert process["ts"] == 0.1 and zombie["ts"] == 0.3
    assert process["ts"] + process["dur"] <= zombie["ts"]
    assert round(process["dur"] * 1000) == 200  # what Perfetto reads: the exact nanoseconds


# -- hostile strings -----------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_hostile_comm_and_argv_give_valid_ascii_json_with_printable_strings():
    text, trace, _ = export(session_table())
    assert text.isascii()
    # Perfetto's JSON reader rejects \ud800-\udfff escapes: none may appear.
    assert not re.search(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}", text)
    for s in _strings(trace):
        assert s.isprintable(), s
        assert all(ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF for c in s)
    track = track_of(trace, 203)
    (exec_slice,) = events_of(trace, track, "exec")
    assert exec_slice["args"]["argv"] == [
        "\\x1b[31mred\\x1b[0m",
        "\\xff\\xfe\\xc3(",
        "emoji \\U0001f600 and \\u202eRTL",
        'tab\\there "quoted" back\\\\slash\\nnewline',
        "\\x00nul",
    ]
    assert exec_slice["args"]["filename"] == "/tmp/\\x1b[2J\\xff"
    assert meta(trace, "thread_name")[track] == {"name": "\\x1b]0;pwn\\x07\\xff"}
    assert meta(trace, "process_name")[track]["name"].startswith("\\x1b]0;pwn\\x07\\xff [203] ← 100 · $'\\x1b[31m")
    for name in (meta(trace, "process_name")[track]["name"], exec_slice["name"]):
        assert len(name) <= 200 and name.endswith("…") and not name.endswith("\\…")  # no escape cut in half


def test_path_misses_are_no_failure_instants_and_the_exec_slice_counts_them():
    # 400 finds `as` at the third directory of PATH; 401 finds `nosuch` nowhere.
    s400, s401 = T0 + 1 * MS - 10 * US, T0 + 3 * MS - 10 * US
    events: list[Event] = [
        fork(T0 + 1 * MS, 400),
        execve(T0 + 1 * MS + 10 * US, 400, s400, [b"as"], errno=ENOENT, filename=b"/usr/local/bin/as"),
        execve(T0 + 1 * MS + 15 * US, 400, s400, [b"as"], errno=ENOENT, filename=b"/opt/bin/as"),
        execve(T0 + 1 * MS + 90 * US, 400, s400, [b"as"], filename=b"/usr/bin/as"),
        exit_(T0 + 2 * MS, 400, s400, comm=b"as"),
        fork(T0 + 3 * MS, 401),
        execve(T0 + 3 * MS + 10 * US, 401, s401, [b"nosuch"], errno=ENOENT, filename=b"/usr/bin/nosuch"),
        generate(END, 999_999, 0),
    ]
    mark_path_searches(events, ())
    table = ProcessTable()
    table.seed(SNAPSHOT)
    table.write(events)
    trace = export(table)[1]
    found = track_of(trace, 400)
    assert events_of(trace, found, "exec_failed") == []
    (slice_,) = events_of(trace, found, "exec")
    assert slice_["args"] == {"filename": "/usr/bin/as", "argv": ["as"], "path_misses": 2}
    (failed,) = events_of(trace, track_of(trace, 401), "exec_failed")
    assert failed["name"] == "exec failed: ENOENT" and failed["args"]["filename"] == "/usr/bin/nosuch"


def test_counter_tracks_count_live_processes_and_spread_cpu_over_each_life():
    from proctrace.model.events import ResourceUsage

    table = session_table()
    for rec in table.processes():
        if rec.end_ns is not None and rec.start_ns:
            # one CPU busy for the whole of its life
            rec.usage = ResourceUsage(rec.end_ns - rec.start_ns, 0, 1024, 0, 0, 0, 0, None, None)
    _, trace, _ = export(table)
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert {e["pid"] for e in counters} == {COUNTERS_PID}
    alive = [e["args"]["value"] for e in counters if e["name"] == "processes alive"]
    cpus = [e["args"]["value"] for e in counters if e["name"] == "CPU in use (CPUs)"]
    assert max(alive) >= 2 and alive[-1] >= 0
    # as many CPUs in use as processes alive that have ended, at every step
    assert all(c <= a + 1e-9 for c, a in zip(cpus, alive, strict=True))
    assert max(cpus) >= 1
    life = next(e for e in trace["traceEvents"] if e.get("cat") == "process" and "cpu_user_ns" in e["args"])
    assert life["args"]["max_rss_kb"] == 1024
