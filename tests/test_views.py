"""The end-of-session views, rendered for a small known session to a fixed-width
console without colour and compared as exact strings; the JSON per process; and
hostile strings, which must come out escaped and never as rich markup."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from proctrace.formats.views import render_summary, render_timeline, render_tree, timeline_json
from proctrace.model.clock import Clock
from proctrace.model.events import (
    CLONE_PARENT,
    CLONE_THREAD,
    FOLD_PTRACE,
    FOLD_RATE,
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
)
from proctrace.model.path_search import mark_path_searches
from proctrace.model.process_table import ProcessTable
from proctrace.model.procsnap import ProcInfo

MS = 1_000_000
T0 = 1_000 * MS  # the session's first event
SH, SH_START = 100, 900 * MS
HOSTILE = b"[red]x\x1b[2J"


def header(ts: int, pid: int, start: int, ppid: int = SH, comm: bytes = b"sh", tgid: int | None = None) -> tuple:
    return (ts, pid, tgid or pid, ppid, 0, comm, start, 0)


def shell(ts: int) -> tuple:
    return header(ts, SH, SH_START, ppid=1)


def start_of(child_forked_at: int) -> int:
    return child_forked_at - 5_000


def session() -> list[Event]:
    """sh runs four children: true exits 0; a fork exits 3 and is a zombie for
    500 ms; a hostile name is killed by SIGTERM; the last fails to exec and runs on."""
    s101, s102, s103, s104 = (start_of(T0 + n * MS) for n in (10, 20, 30, 50))
    return [
        ExecEvent(*shell(T0), filename=b"/bin/sh", argv=[b"sh", b"-c", b"job"], old_pid=SH),
        ForkEvent(*shell(T0 + 10 * MS), child_pid=101, child_tgid=101, child_ppid=SH),
        ExecEvent(
            *header(T0 + 11 * MS, 101, s101, comm=b"true"),
            filename=b"/bin/true",
            argv=[b"/bin/true", b"a b", b"c"],
            old_pid=101,
        ),
        ExitEvent(*header(T0 + 12 * MS, 101, s101, comm=b"true"), status=WaitStatus(0), process_exit=True),
        ReapEvent(*shell(T0 + 13 * MS), reaped_pid=101, status=WaitStatus(0)),
        ForkEvent(*shell(T0 + 20 * MS), child_pid=102, child_tgid=102, child_ppid=SH),
        ExitEvent(*header(T0 + 21 * MS, 102, s102), status=WaitStatus(3 << 8), process_exit=True),
        ForkEvent(*shell(T0 + 30 * MS), child_pid=103, child_tgid=103, child_ppid=SH),
        ExecEvent(
            *header(T0 + 31 * MS, 103, s103, comm=HOSTILE), filename=b"/tmp/evil", argv=[HOSTILE, b"\xff"], old_pid=103
        ),
        SignalEvent(
            *shell(T0 + 40 * MS), stage=SIGNAL_GENERATE, signo=15, target_pid=103, target_comm=HOSTILE, group=True
        ),
        SignalEvent(
            *header(T0 + 40 * MS + 100_000, 103, s103, comm=HOSTILE),
            stage=SIGNAL_DELIVER,
            signo=9,
            target_pid=103,
            group_exit_signo=15,
        ),
        ExitEvent(*header(T0 + 40 * MS + 200_000, 103, s103, comm=HOSTILE), status=WaitStatus(15), process_exit=True),
        ReapEvent(*shell(T0 + 41 * MS), reaped_pid=103, status=WaitStatus(15)),
        ForkEvent(*shell(T0 + 50 * MS), child_pid=104, child_tgid=104, child_ppid=SH),
        ExecEvent(*header(T0 + 51 * MS, 104, s104), filename=b"/nope", argv=[b"nope"], errno=2, old_pid=104),
        ReapEvent(*shell(T0 + 521 * MS), reaped_pid=102, status=WaitStatus(3 << 8)),
    ]


@pytest.fixture
def table() -> ProcessTable:
    t = ProcessTable()
    t.write(session())
    return t


TIMELINE = """\
100 sh  parent 1
  -0.100000s  started (fork not seen), parent 1
  +0.000000s  exec /bin/sh sh -c job
  +0.521000s  still running at the end (621.0ms so far)
  4 children · 1 thread

101 true  parent 100
  +0.010000s  forked by 100 (sh)
  +0.011000s  exec /bin/true /bin/true 'a b' c
  +0.012000s  exit 0 after 2.0ms
  +0.013000s  reaped by 100 (sh) after 1.0ms as a zombie
  lifetime 2.0ms · zombie 1.0ms · 0 children · 1 thread

102 sh  parent 100
  +0.020000s  forked by 100 (sh)
  +0.021000s  exit 3 after 1.0ms
  +0.521000s  reaped by 100 (sh) after 500.0ms as a zombie
  lifetime 1.0ms · zombie 500.0ms · 0 children · 1 thread

103 [red]x\\x1b[2J  parent 100
  +0.030000s  forked by 100 (sh)
  +0.031000s  exec /tmp/evil $'[red]x\\x1b[2J' $'\\xff'
  +0.040000s  SIGTERM from 100 (sh)
  +0.040100s  SIGKILL delivered (group exit by SIGTERM)
  +0.040200s  killed by SIGTERM after 10.2ms
  +0.041000s  reaped by 100 (sh) after 800.0µs as a zombie
  lifetime 10.2ms · zombie 800.0µs · 0 children · 1 thread

104 sh  parent 100
  +0.050000s  forked by 100 (sh)
  +0.051000s  exec FAILED ENOENT /nope nope
  +0.521000s  still running at the end (471.0ms so far)
  0 children · 1 thread
"""


def test_timeline_tells_each_life_in_order(table):
    out = io.StringIO()
    render_timeline(table, None, out, False)
    assert out.getvalue() == TIMELINE


def summaries_of_the_shell() -> list[SignalSummaryEvent]:
    """Two periods of ptrace stops the shell's tracer was told of, and a delivery flood."""
    base = dict(pid=SH, tgid=SH, ppid=1, uid=0, comm=b"sh", start_ns=SH_START, cpu=0)
    ptrace = dict(reason=FOLD_PTRACE, signo=17, target_pid=7, target_comm=b"strace")
    return [
        SignalSummaryEvent(T0 + 70 * MS, **base, **ptrace, count=1500, first_ns=T0 + 5 * MS, last_ns=T0 + 60 * MS),
        SignalSummaryEvent(T0 + 90 * MS, **base, **ptrace, count=500, first_ns=T0 + 70 * MS, last_ns=T0 + 80 * MS),
        SignalSummaryEvent(
            ts_ns=T0 + 90 * MS, **base, reason=FOLD_RATE, stage=SIGNAL_DELIVER, signo=10, target_pid=SH, count=42,
            first_ns=T0 + 85 * MS, last_ns=T0 + 86 * MS,
        ),
    ]  # fmt: skip


def test_a_timeline_tells_what_the_kernel_counted_for_the_process_once_per_kind(table):
    table.write(summaries_of_the_shell())
    out = io.StringIO()
    render_timeline(table, [SH], out, False)
    lines = out.getvalue().splitlines()
    folded = [line for line in lines if "counted in the kernel" in line]
    assert [line.split(maxsplit=1)[1] for line in folded] == [
        "2,000 ptrace stops -> tracer 7 (strace) in 75.0ms (SIGCHLD, folded), counted in the kernel",
        "SIGUSR1 delivered: 42 more beyond the rate limit in 1.0ms, counted in the kernel",
    ]
    (shell,) = [d for d in timeline_json(table, [SH])]
    assert shell["folded_signals"][0] == {
        "reason": "ptrace_stop",
        "stage": "generate",
        "signal": "SIGCHLD",
        "target_pid": 7,
        "target_comm": "strace",
        "count": 2000,
        "first_ns": T0 + 5 * MS,
        "last_ns": T0 + 80 * MS,
    }


def test_timeline_of_chosen_pids_only(table):
    out = io.StringIO()
    render_timeline(table, [102], out, False)
    assert out.getvalue() == TIMELINE.split("\n\n")[2] + "\n"


TREE = """\
100 sh -c job  running 621.0ms
├── 101 /bin/true 'a b' c  2.0ms  exit 0
├── 102 sh -c job  1.0ms  exit 3
├── 103 $'[red]x\\x1b[2J' $'\\xff'  10.2ms  killed by SIGTERM
└── 104 sh -c job  running 471.0ms
"""


def test_tree_shows_command_lines_lifetimes_and_outcomes(table):
    out = io.StringIO()
    render_tree(table, out, False, width=100)
    assert out.getvalue() == TREE


def test_tree_colours_by_outcome(table):
    out = io.StringIO()
    render_tree(table, out, True, width=100)
    lines = out.getvalue().splitlines()
    assert "\x1b[32mexit 0\x1b[0m" in lines[1]
    assert "\x1b[31mexit 3\x1b[0m" in lines[2]
    assert "\x1b[31mkilled by SIGTERM\x1b[0m" in lines[3]
    assert "\x1b[2m sh -c job  running 471.0ms\x1b[0m" in lines[4]  # still running: dim


def test_tree_with_roots_covers_their_subtrees_only(table):
    fork = ForkEvent(*header(T0 + 600 * MS, 104, start_of(T0 + 50 * MS)), child_pid=105, child_tgid=105, child_ppid=104)
    table.write([fork])
    out = io.StringIO()
    render_tree(table, out, False, [104], width=100)
    assert out.getvalue() == "104 sh -c job  running 550.0ms\n└── 105 sh -c job  running 0ns\n"
    assert [d["pid"] for d in timeline_json(table, None, roots=[104])] == [104, 105]


def test_tree_folds_threads_and_notes_adoption():
    t = ProcessTable()
    start = start_of(T0 + 10 * MS)
    t.write(
        [
            ForkEvent(*shell(T0 + 10 * MS), child_pid=101, child_tgid=101, child_ppid=SH),
            ForkEvent(*header(T0 + 11 * MS, 101, start), child_pid=102, child_tgid=101, clone_flags=0x10000),
            ForkEvent(*header(T0 + 12 * MS, 101, start), child_pid=103, child_tgid=103, child_ppid=101),
            ExitEvent(*header(T0 + 13 * MS, 102, start, tgid=101), status=WaitStatus(0), process_exit=False),
            ExitEvent(*header(T0 + 14 * MS, 101, start), status=WaitStatus(0), process_exit=True),
            ReapEvent(*shell(T0 + 15 * MS), reaped_pid=101, status=WaitStatus(0)),
            # the orphan's exit names its new parent
            ExitEvent(*header(T0 + 20 * MS, 103, start_of(T0 + 12 * MS), ppid=SH), process_exit=True),
        ]
    )
    out = io.StringIO()
    render_tree(t, out, False, width=100)
    assert out.getvalue() == (
        "100 [sh]  running 120.0ms\n"
        "└── 101 [sh]  4.0ms  exit 0  (2 threads)\n"
        "    └── 103 [sh]  8.0ms  exit 0 (zombie, not reaped)  (adopted by 100)\n"
    )


SUMMARY = """\
5 processes: 3 ended, 2 still running, 0 zombies not reaped; 16 events, 0 lost
Commands
COMMAND         PROCESSES   EXIT 0   FAILED   RUNNING
─────────────────────────────────────────────────────
sh                      3        0        1         2
[red]x\\x1b[2J           1        0        1         0
true                    1        1        0         0
1 non-zero exits, 1 deaths by signal, 1 failed execs
Failures
FAILURE             WHAT            COUNT
─────────────────────────────────────────
exec ENOENT         /nope               1
exit 3              sh                  1
killed by SIGTERM   [red]x\\x1b[2J       1
Signals sent
SIGNAL    SENT   BY THE KERNEL
──────────────────────────────
SIGTERM      1               0
Longest-lived
PID   COMMAND                    LIFETIME   OUTCOME
─────────────────────────────────────────────────────────────
103   $'[red]x\\x1b[2J' $'\\xff'     10.2ms   killed by SIGTERM
101   /bin/true 'a b' c             2.0ms   exit 0
102   sh -c job                     1.0ms   exit 3
Shortest-lived
PID   COMMAND                    LIFETIME   OUTCOME
─────────────────────────────────────────────────────────────
102   sh -c job                     1.0ms   exit 3
101   /bin/true 'a b' c             2.0ms   exit 0
103   $'[red]x\\x1b[2J' $'\\xff'     10.2ms   killed by SIGTERM
Events lost: 0
"""


NO_LOSS = {"lifecycle": 0, "signal": 0}


def test_summary_counts_commands_failures_signals_and_lifetimes(table):
    out = io.StringIO()
    render_summary(table, out, False, NO_LOSS, width=100)
    assert out.getvalue() == SUMMARY


def test_summary_reports_lost_events(table):
    out = io.StringIO()
    render_summary(table, out, False, {"lifecycle": 12, "signal": 0}, width=100)
    text = out.getvalue()
    assert text.startswith("5 processes: 3 ended, 2 still running, 0 zombies not reaped; 16 events, 12 lost\n")
    assert text.endswith(
        "Events lost: 12 (12 lifecycle events, 0 signal events); processes alive then are marked incomplete.\n"
    )


def test_summary_says_lost_signals_leave_the_lives_whole(table):
    out = io.StringIO()
    render_summary(table, out, False, {"lifecycle": 0, "signal": 30}, width=100)
    assert out.getvalue().endswith("Events lost: 30 (0 lifecycle events, 30 signal events).\n")


def test_summary_counts_what_the_kernel_folded_and_adds_folded_signals_to_those_sent(table):
    base = dict(ts_ns=T0 + 60 * MS, pid=SH, tgid=SH, ppid=1, uid=0, comm=b"sh", start_ns=SH_START, cpu=0)
    table.write(
        [
            SignalSummaryEvent(**base, reason=FOLD_PTRACE, signo=17, target_pid=100, count=20118),
            SignalSummaryEvent(**base, reason=FOLD_RATE, signo=10, target_pid=100, count=5000),
            SignalSummaryEvent(**base, reason=FOLD_RATE, stage=SIGNAL_DELIVER, signo=10, target_pid=101, count=700),
        ]
    )
    out = io.StringIO()
    render_summary(table, out, False, NO_LOSS, width=200)
    text = out.getvalue()
    assert (
        "Counted in the kernel, not streamed: 20,118 ptrace stops (SIGCHLD to a tracer), "
        "5,000 signals beyond the rate limit, 700 deliveries of either.\n"
    ) in text
    sent = dict(re.findall(r"^(SIG\w+) +(\d+) +\d+$", text, re.M))
    assert (sent["SIGCHLD"], sent["SIGUSR1"]) == ("20118", "5000")


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("view", ["timeline", "tree", "summary"])
def test_hostile_names_are_escaped_and_never_markup(table, view, color):
    out = io.StringIO()
    if view == "timeline":
        render_timeline(table, None, out, color)
    elif view == "tree":
        render_tree(table, out, color, width=100)
    else:
        render_summary(table, out, color, NO_LOSS, width=100)
    text = out.getvalue()
    assert "[red]x\\x1b[2J" in text  # literally: the brackets kept, the ESC shown as \x1b
    assert "\x1b[2J" not in text and "\xff" not in text
    if not color:
        assert "\x1b" not in text


def test_timeline_json_has_the_schema_and_the_facts(table):
    objs = {d["pid"]: d for d in timeline_json(table, None)}
    assert list(objs) == [100, 101, 102, 103, 104]
    true = objs[101]
    assert {k: true[k] for k in ("pid", "tgid", "ppid", "start_ns", "end_ns", "reaped_ns", "reaper")} == {
        "pid": 101,
        "tgid": 101,
        "ppid": SH,
        "start_ns": start_of(T0 + 10 * MS),
        "end_ns": T0 + 12 * MS,
        "reaped_ns": T0 + 13 * MS,
        "reaper": SH,
    }
    assert [{k: e[k] for k in ("ts_ns", "filename", "argv")} for e in true["execs"]] == [
        {"ts_ns": T0 + 11 * MS, "filename": "/bin/true", "argv": ["/bin/true", "a b", "c"]}
    ]
    zombie = objs[102]
    assert (zombie["exit_code"], zombie["signal"], zombie["core_dumped"], zombie["zombie_ns"]) == (
        3,
        None,
        False,
        500 * MS,
    )
    killed = objs[103]
    assert (killed["exit_code"], killed["signal"], killed["lifetime_ns"]) == (None, "SIGTERM", 10 * MS + 205_000)
    assert [(s["signal"], s["stage"]) for s in killed["signals"]] == [("SIGTERM", "generate"), ("SIGKILL", "deliver")]
    assert objs[104]["failed_execs"] == [
        {"ts_ns": T0 + 51 * MS, "filename": "/nope", "argv": ["nope"], "errno": "ENOENT", "path_search": False}
    ]
    assert objs[104]["execs"] == [] and objs[104]["end_ns"] is None
    shell_obj = objs[SH]
    assert (shell_obj["children"], shell_obj["threads"], shell_obj["pre_existing"]) == ([101, 102, 103, 104], 1, False)
    for obj in objs.values():
        assert {"adopted_by", "failed_execs", "incomplete", "zombie_ns", "lifetime_ns", "reaper"} <= obj.keys()


def test_timeline_json_strings_round_trip_bytes(table):
    (obj,) = timeline_json(table, [103])
    text = json.dumps(obj, ensure_ascii=True)
    back = json.loads(text)
    assert [as_bytes(a) for a in back["execs"][0]["argv"]] == [HOSTILE, b"\xff"]
    assert as_bytes(back["comm"]) == HOSTILE


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_pre_existing_lost_and_unreaped_are_said_with_wall_clock_times(utc):
    t = ProcessTable()
    t.seed(
        [ProcInfo(1, 0, 0, b"init", [b"/sbin/init"], start_ns=1 * MS), ProcInfo(SH, 1, 0, b"sh", [b"-sh"], SH_START)]
    )
    t.write(
        [
            ForkEvent(*shell(T0), child_pid=200, child_tgid=200, child_ppid=SH),
            ExitEvent(*header(T0 + 2 * MS, 200, start_of(T0)), status=WaitStatus(3 << 8), process_exit=True),
        ]
    )
    t.lost(T0 + 3 * MS, 2, 2)
    t.write([SignalEvent(*shell(T0 + 1_500 * MS), stage=SIGNAL_GENERATE, signo=1, target_pid=4242, group=True)])
    out = io.StringIO()
    render_timeline(t, [SH, 200], out, False, clock=Clock(1_700_000_000 * 10**9))
    assert out.getvalue() == (
        "100 sh  parent 1  [pre-existing]  [incomplete: events were lost while it lived]\n"
        "  22:13:20.900000  started before tracing, parent 1\n"
        "  22:13:22.500000  still running at the end (1.60s so far)\n"
        "  1 child · 1 thread\n"
        "\n"
        "200 sh  parent 100  [incomplete: events were lost while it lived]\n"
        "  22:13:21.000000  forked by 100 (sh)\n"
        "  22:13:21.002000  exit 3 after 2.0ms\n"
        "  22:13:22.500000  still a zombie at the end: not reaped after 1.50s\n"
        "  lifetime 2.0ms · 0 children · 1 thread\n"
    )
    out = io.StringIO()
    render_tree(t, out, False, width=100)
    assert out.getvalue() == (
        "1 /sbin/init  running 2.50s  (pre-existing, incomplete)\n"
        "└── 100 -sh  running 1.60s  (pre-existing, incomplete)\n"
        "    └── 200 -sh  2.0ms  exit 3 (zombie, not reaped)  (incomplete)\n"
    )
    out = io.StringIO()
    render_timeline(t, [1], out, False)
    assert "  -0.999000s  started before tracing (time from /proc: approximate), parent 0\n" in out.getvalue()


def test_timeline_tells_threads_stops_renames_and_orphans():
    s200 = start_of(T0)
    t = ProcessTable()
    t.write(
        [
            ForkEvent(*shell(T0), child_pid=200, child_tgid=200, child_ppid=SH),
            ForkEvent(*header(T0 + 1 * MS, 200, s200), child_pid=201, child_tgid=200, clone_flags=CLONE_THREAD),
            ForkEvent(
                *header(T0 + 2 * MS, 200, s200), child_pid=300, child_tgid=300, child_ppid=SH, clone_flags=CLONE_PARENT
            ),
            ExitEvent(*header(T0 + 3 * MS, 200, s200), status=WaitStatus(0), process_exit=False),
            ExecEvent(
                *header(T0 + 4 * MS, 200, s200, comm=b"worker"),
                filename=b"/usr/bin/worker",
                argv=[b"worker"],
                old_pid=201,
            ),
            ExecEvent(*header(T0 + 4 * MS, 300, start_of(T0 + 2 * MS)), filename=b"/nope", argv=[b"nope"], errno=13),
            ForkEvent(*header(T0 + 5 * MS, 200, s200, comm=b"job-1"), child_pid=202, child_tgid=202, child_ppid=200),
            SignalEvent(*shell(T0 + 6 * MS), stage=SIGNAL_GENERATE, signo=19, target_pid=200, group=True),
            SignalEvent(*header(T0 + 6 * MS, 200, s200, comm=b"job-1"), stage=SIGNAL_DELIVER, signo=19, target_pid=200),
            SignalEvent(*shell(T0 + 9 * MS), stage=SIGNAL_GENERATE, signo=18, target_pid=200, group=True),
            SignalEvent(*shell(T0 + 10 * MS), stage=SIGNAL_GENERATE, signo=15, target_pid=200, group=True, result=1),
            ExitEvent(*header(T0 + 11 * MS, 200, s200, comm=b"job-1"), status=WaitStatus(0x8B), process_exit=True),
            ExitEvent(
                *header(T0 + 12 * MS, 202, start_of(T0 + 5 * MS), ppid=1, comm=b"job-1"),
                status=WaitStatus(0),
                process_exit=True,
            ),
            ReapEvent(*shell(T0 + 13 * MS), reaped_pid=200, status=WaitStatus(0x8B)),
        ]
    )
    out = io.StringIO()
    render_timeline(t, [200, 202, 300], out, False)
    assert out.getvalue() == (
        "200 job-1  parent 100\n"
        "  +0.000000s  forked by 100 (sh)\n"
        "  +0.003000s  main thread exited; the other threads go on\n"
        "  +0.004000s  exec /usr/bin/worker worker (from thread 201)\n"
        "  +0.005000s  renamed itself job-1\n"
        "  +0.006000s  SIGSTOP from 100 (sh)\n"
        "  +0.006000s  SIGSTOP delivered, default action: stopped\n"
        "  +0.009000s  SIGCONT from 100 (sh): continued after 3.0ms stopped\n"
        "  +0.010000s  SIGTERM from 100 (sh) (ignored)\n"
        "  +0.011000s  killed by SIGSEGV (core dumped) after 11.0ms\n"
        "  +0.013000s  reaped by 100 (sh) after 2.0ms as a zombie\n"
        "  lifetime 11.0ms · zombie 2.0ms · 1 child · 2 threads\n"
        "\n"
        "300 sh  parent 100\n"
        "  +0.002000s  forked by 200 (job-1) as a child of 100 (CLONE_PARENT)\n"
        "  +0.004000s  exec FAILED EACCES /nope nope\n"
        "  +0.013000s  still running at the end (11.0ms so far)\n"
        "  0 children · 1 thread\n"
        "\n"
        "202 job-1  parent 1\n"
        "  +0.005000s  forked by 200 (job-1)\n"
        "  +0.011000s  orphaned: parent 200 exited; adopted by 1\n"
        "  +0.012000s  exit 0 after 7.0ms\n"
        "  +0.013000s  still a zombie at the end: not reaped after 1.0ms\n"
        "  lifetime 7.0ms · 0 children · 1 thread\n"
    )


def test_timeline_colours_by_role(table):
    out = io.StringIO()
    render_timeline(table, [102], out, True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "\x1b[1m102\x1b[0m \x1b[1msh\x1b[0m  parent 100"
    assert lines[1] == "  \x1b[2m+0.020000s\x1b[0m  \x1b[34mforked by 100 (sh)\x1b[0m"
    assert lines[2] == "  \x1b[2m+0.021000s\x1b[0m  \x1b[31mexit 3 after 1.0ms\x1b[0m"


# ---------------------------------------------------------------------------
# PATH searches: misses folded into the exec that ended the search


CC, CC_START = 110, start_of(T0 + 60 * MS)


def cc_exec(ts: int, filename: bytes, err: int = 0) -> ExecEvent:
    name = filename.rsplit(b"/", 1)[-1]
    return ExecEvent(
        *header(ts, CC, CC_START, comm=b"as" if not err else b"sh"), filename=filename, argv=[name, b"-o", b"f.o"],
        errno=err, old_pid=CC,
    )  # fmt: skip


def path_search_table() -> ProcessTable:
    """sh forks 110, which finds `as` at the fourth directory of PATH, and 111,
    which looks for a command that is nowhere: as the sources hand them over,
    decided by tracer/model/path_search.py."""
    events: list[Event] = [
        ExecEvent(*shell(T0), filename=b"/bin/sh", argv=[b"sh", b"-c", b"job"], old_pid=SH),
        ForkEvent(*shell(T0 + 60 * MS), child_pid=CC, child_tgid=CC, child_ppid=SH),
        *(
            cc_exec(T0 + 61 * MS + i * 5_000, d + b"/as", err=2)
            for i, d in enumerate([b"/usr/local/bin", b"/root/.cargo/bin", b"/opt/bin"])
        ),
        cc_exec(T0 + 61 * MS + 100_000, b"/usr/bin/as"),
        ExitEvent(*header(T0 + 62 * MS, CC, CC_START, comm=b"as"), status=WaitStatus(0), process_exit=True),
        ReapEvent(*shell(T0 + 63 * MS), reaped_pid=CC, status=WaitStatus(0)),
        ForkEvent(*shell(T0 + 70 * MS), child_pid=111, child_tgid=111, child_ppid=SH),
        ExecEvent(
            *header(T0 + 71 * MS, 111, start_of(T0 + 70 * MS)),
            filename=b"/usr/bin/nosuch",
            argv=[b"nosuch"],
            errno=2,
            old_pid=111,
        ),
    ]
    mark_path_searches(events, ())
    t = ProcessTable()
    t.write(events)
    return t


def test_timeline_folds_path_misses_into_the_exec_that_ended_the_search():
    out = io.StringIO()
    render_timeline(path_search_table(), [CC, 111], out, False)
    assert out.getvalue() == (
        "110 as  parent 100\n"
        "  +0.060000s  forked by 100 (sh)\n"
        "  +0.061100s  exec /usr/bin/as as -o f.o (after 3 PATH misses)\n"
        "  +0.062000s  exit 0 after 2.0ms\n"
        "  +0.063000s  reaped by 100 (sh) after 1.0ms as a zombie\n"
        "  lifetime 2.0ms · zombie 1.0ms · 0 children · 1 thread\n"
        "\n"
        "111 sh  parent 100\n"
        "  +0.070000s  forked by 100 (sh)\n"
        "  +0.071000s  exec FAILED ENOENT /usr/bin/nosuch nosuch\n"
        "  +0.071000s  still running at the end (1.0ms so far)\n"
        "  0 children · 1 thread\n"
    )


PATH_SEARCH_SUMMARY = """\
3 processes: 1 ended, 2 still running, 0 zombies not reaped; 10 events, 0 lost
Commands
COMMAND   PROCESSES   EXIT 0   FAILED   RUNNING
───────────────────────────────────────────────
sh                2        0        0         2
as                1        1        0         0
0 non-zero exits, 0 deaths by signal, 1 failed execs
3 PATH misses folded into their execs
Failures
FAILURE       WHAT              COUNT
─────────────────────────────────────
exec ENOENT   /usr/bin/nosuch       1
No signals sent.
"""


def test_summary_counts_path_misses_apart_from_failures_in_a_neutral_style():
    out = io.StringIO()
    render_summary(path_search_table(), out, False, NO_LOSS, width=100)
    assert out.getvalue().startswith(PATH_SEARCH_SUMMARY)
    colored = io.StringIO()
    render_summary(path_search_table(), colored, True, NO_LOSS, width=100)
    (line,) = [ln for ln in colored.getvalue().splitlines() if "PATH misses" in ln]
    assert line == "3 PATH misses folded into their execs"  # no colour: not a failure


def test_a_clean_path_search_reports_no_failed_exec():
    table = path_search_table()
    assert (table.aggregates.failed_execs, table.aggregates.path_misses) == (1, 3)
    assert table.aggregates.failures.counts == {("exec ENOENT", b"/usr/bin/nosuch"): 1}
    (cc,) = table.find(CC)
    assert cc.path_misses == 3 and [ex.path_misses for ex in cc.execs] == [3]


def test_timeline_json_keeps_every_attempt_with_its_flag():
    objs = {obj["pid"]: obj for obj in timeline_json(path_search_table(), [CC, 111])}
    cc = objs[CC]
    assert [(e["filename"], e["errno"], e["path_search"]) for e in cc["failed_execs"]] == [
        ("/usr/local/bin/as", "ENOENT", True),
        ("/root/.cargo/bin/as", "ENOENT", True),
        ("/opt/bin/as", "ENOENT", True),
    ]
    assert [(e["filename"], e["path_misses"]) for e in cc["execs"]] == [("/usr/bin/as", 3)]
    assert cc["path_misses"] == 3
    assert [(e["filename"], e["path_search"]) for e in objs[111]["failed_execs"]] == [("/usr/bin/nosuch", False)]
    assert objs[111]["path_misses"] == 0


def test_tree_is_the_same_with_or_without_path_misses():
    out = io.StringIO()
    render_tree(path_search_table(), out, False, [CC], width=100)
    assert out.getvalue() == "110 as -o f.o  2.0ms  exit 0\n"
