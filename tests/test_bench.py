"""The pure parts of the bench (proctrace.bench): statistics, output parsers,
event counting, targets, the JSON document and the table. No timing, no root,
no kernel."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from proctrace.bench import (
    BenchError,
    counting,
    lost_counter,
    machine,
    measure,
    overload,
    results,
    run,
    stats,
    storm,
    table,
    top,
    tracers,
)

STORM = storm.STORM_COMM
TRUE = storm.TRUE_COMM


# ---- statistics ---------------------------------------------------------------


def test_median_ignores_missing_values():
    assert stats.median([3.0, None, 1.0, 2.0]) == 2.0
    assert stats.median([None, None]) is None
    assert stats.median([]) is None


def test_bracketing_baselines_average_the_runs_either_side():
    assert stats.bracketing_baselines([100.0, 120.0, 80.0]) == [110.0, 100.0]
    # A failed untraced run leaves its neighbour alone as the baseline.
    assert stats.bracketing_baselines([100.0, None, 80.0]) == [100.0, 80.0]
    assert stats.bracketing_baselines([None, None]) == [None]


def test_paired_ratios_skip_missing_pairs():
    assert stats.paired_ratios([90.0, None, 50.0], [100.0, 100.0, 0.0]) == [0.9]


def test_slowdown_is_the_missing_fraction_of_the_untraced_rate():
    assert stats.slowdown_pct(0.96) == pytest.approx(4.0)
    assert stats.slowdown_pct(1.02) == pytest.approx(-2.0)
    assert stats.slowdown_pct(None) is None


def test_storm_summary_compares_each_rep_with_its_brackets():
    runs = {
        "untraced": [{"rate": 100.0}, {"rate": 120.0}, {"rate": 80.0}, {"rate": 100.0}],
        "proctrace": [
            {"rate": 105.0, "ready_s": 0.7, "cpu_us_per_event": 3.0, "lost": 0},
            {"rate": 95.0, "ready_s": 0.9, "cpu_us_per_event": 5.0, "lost": 0},
            {"rate": 81.0, "ready_s": 0.8, "cpu_us_per_event": 4.0, "lost": 2},
        ],
    }
    summary = results.storm_summary(runs)
    pt = summary["proctrace"]
    assert pt["ratios"] == pytest.approx([105 / 110, 95 / 100, 81 / 90])
    assert pt["median_ratio"] == pytest.approx(0.95)
    assert pt["slowdown_pct"] == pytest.approx(5.0)
    assert pt["median_rate"] == 95.0
    assert pt["median_ready_s"] == pytest.approx(0.8)
    assert pt["median_cpu_us_per_event"] == pytest.approx(4.0)
    assert pt["lost"] == [0, 0, 2]
    base = summary["untraced"]
    assert base["ratios"] == pytest.approx([1.2, 80 / 120, 1.25])
    assert "ready_s" not in base


def test_storm_summary_keeps_failed_runs_out_of_the_medians():
    runs = {
        "untraced": [{"rate": 100.0}, {"rate": 100.0}, {"rate": 100.0}],
        "proctrace -w": [{"rate": None, "error": "proctrace: FILE exists"}, {"rate": 90.0}],
        "forkstat": [{"rate": None, "error": "boom"}, {"rate": None, "error": "boom"}],
    }
    summary = results.storm_summary(runs)
    assert summary["proctrace -w"]["ratios"] == [0.9]
    assert summary["proctrace -w"]["errors"] == ["proctrace: FILE exists"]
    assert summary["forkstat"]["median_rate"] is None
    assert summary["forkstat"]["slowdown_pct"] is None


# ---- parsers ------------------------------------------------------------------


def test_parse_storm_line():
    assert storm.parse_storm_line("spawned 7241 failed 0 seconds 3.000545\n") == (7241, 0, 3.000545)
    with pytest.raises(BenchError):
        storm.parse_storm_line("storm: fork: Resource temporarily unavailable")


def test_parse_summary_takes_the_closing_line():
    stderr = "proctrace: tracing every process (ring buffer); Ctrl-C to stop\nproctrace: 31873 events, 12 lost\n"
    assert counting.parse_summary(stderr) == (31873, 12)
    assert counting.parse_summary("proctrace: the BPF program did not load\n") is None


def test_parse_bpftrace_lost_sums_every_warning():
    assert counting.parse_bpftrace_lost("fork 1 2 sh\nLost 10 events\nexec ...\nLost 5 events\n") == 15
    assert counting.parse_bpftrace_lost("Attaching 4 probes...\n") == 0


HELP_NOW = """\
options:
  --env                  exec events carry the environment (secrets redacted)
  -w FILE, --write FILE  record the session to FILE (.gz compresses)
  -r FILE, --read FILE   read a recorded session instead of tracing
  -q, --quiet            with -w: record without printing the stream
  -c PATTERN, --comm PATTERN
  --regex                -c and -C patterns are regular expressions
"""
HELP_BEFORE = """\
options:
  --json                one JSON object per event per line
  -o FILE, --output FILE
  --buffer {ring,perf}  kernel-to-user transport
  --regex-like-option   an option whose name starts like another
"""


def test_features_follow_the_options_help_lists():
    assert run.features_from_help(HELP_NOW) == {
        "record": True, "read": True, "quiet": True, "filter": True, "env": True
    }  # fmt: skip
    assert run.features_from_help(HELP_BEFORE) == {
        "record": False, "read": False, "quiet": False, "filter": False, "env": False
    }  # fmt: skip


def test_the_storm_runs_under_env_when_proctrace_has_it(tmp_path):
    features = run.features_from_help(HELP_NOW)
    names = [c.name for c in run.timed_configs(features, {}, tmp_path, quick=True)]
    assert "proctrace --env" in names
    names = [c.name for c in run.timed_configs(run.features_from_help(HELP_BEFORE), {}, tmp_path, quick=True)]
    assert "proctrace --env" not in names


def test_cpu_ticks_survive_a_comm_with_spaces_and_parens():
    fields = ["S", "1"] + ["0"] * 9 + ["250", "40"] + ["0"] * 30
    stat = "1234 (we (ird) name) " + " ".join(fields)
    assert machine.proc_stat_cpu_ticks(stat) == 290


def test_vm_rss():
    assert machine.vm_rss_kb("Name:\tpython\nVmHWM:\t 152520 kB\nVmRSS:\t  149844 kB\n") == 149844
    assert machine.vm_rss_kb("Name:\tkthreadd\n") is None


def test_prog_type_of_fdinfo():
    fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t5\nprog_jited:\t1\nprog_id:\t11522\n"
    assert machine.prog_type_of(fdinfo) == 5
    assert 5 in machine.TRACING_PROG_TYPES
    assert machine.prog_type_of("pos:\t0\nmap_type:\t27\nmap_id:\t1518\n") is None


def test_cpu_stat_seconds_and_others_share():
    before = "cpu  273528 0 74801 463505 1388 0 377 310 0 0\n"
    after = "cpu  273658 5 74871 463506 1388 1 380 320 0 0\n"
    busy, steal = machine.cpu_stat_seconds(before, after, hz=100)
    assert busy == pytest.approx((130 + 5 + 70 + 1 + 3) / 100)
    assert steal == pytest.approx(0.1)
    # 2.09 s busy in 1 s on 2 CPUs, 1.9 s of it ours: others used ~9.5% of the machine.
    assert machine.others_cpu_pct(2.09, 1.9, elapsed_s=1.0, cpus=2) == pytest.approx(9.5)
    assert machine.others_cpu_pct(1.0, 1.2, elapsed_s=1.0, cpus=2) == 0.0


def test_a_watch_told_not_to_recheck_keeps_the_tracers_it_saw_at_the_start(monkeypatch):
    """After `proctrace -- COMMAND` ends, its own probes are held by its detaching
    child: a watch that looked again then would take them for a neighbour's."""

    def watch_seeing(*sightings):
        found = iter(sightings)
        monkeypatch.setattr(machine, "foreign_tracers", lambda ours: next(found))
        return machine.Watch(None)

    start, end = ["bpftrace[10]"], ["bpftrace[10]", "python[20]"]
    assert watch_seeing(start, end).finish(0.0)["foreign_tracers"] == end
    assert watch_seeing(start, end).finish(0.0, recheck_tracers=False)["foreign_tracers"] == start
    assert watch_seeing([], end).finish(0.0, recheck_tracers=False)["foreign_tracers"] == []


def test_storm_summary_counts_repeated_and_disturbed_runs():
    runs = {
        "untraced": [{"rate": 100.0, "others_cpu_pct": 1.0}, {"rate": 100.0, "others_cpu_pct": 3.0}],
        "bpftrace": [{"rate": 70.0, "attempts": 3, "disturbed": True, "others_cpu_pct": 30.0}],
    }
    summary = results.storm_summary(runs)
    assert summary["bpftrace"]["repeated_runs"] == 2
    assert summary["bpftrace"]["disturbed_runs"] == 1
    assert summary["untraced"]["median_others_cpu_pct"] == 2.0


# ---- counting the storm's events ----------------------------------------------

PIDS = {501, 502}


def _json(**fields):
    return json.dumps(fields) + "\n"


JSON_LINES = [
    '{"format":"proctrace-recording","version":1}\n',  # a recording's header
    _json(type="fork", pid=400, tgid=400, comm=STORM, child_pid=501, thread=False),
    _json(type="fork", pid=400, tgid=400, comm=STORM, child_pid=502, thread=False),
    _json(type="fork", pid=400, tgid=400, comm=STORM, child_pid=503, thread=False),  # not the storm's
    _json(type="fork", pid=400, tgid=400, comm=STORM, child_pid=501, thread=True),  # a thread
    _json(type="exec", pid=501, comm=TRUE, errno=None),
    _json(type="exec", pid=502, comm=TRUE, errno="ENOENT"),  # failed
    _json(type="exec", pid=502, comm="bash", errno=None),  # a reused pid, someone else
    _json(type="exit", pid=501, comm=TRUE, process_exit=True),
    _json(type="exit", pid=502, comm=TRUE, process_exit=False),
    _json(type="reap", pid=400, comm=STORM, reaped_pid=501),
    _json(type="signal", pid=501, comm=TRUE, signal="SIGCHLD"),
    '{"type":"lost","count":3,"total":3}\n',
    '{"type":"exit","pid":502,"comm":"ptbench-tr',  # cut short
]


def test_count_json_counts_only_the_storm_processes_events():
    assert counting.count_json(JSON_LINES, PIDS) == Counter(fork=2, exec=1, exit=1, reap=1)


PRETTY_LINES = [
    "TIME            KIND   PID     PPID    COMM            DETAIL\n",
    f"16:31:26.163978 fork   400     399     {STORM}   process 501\n",
    f"16:31:26.163979 fork   400     399     {STORM}   thread 502\n",
    f"16:31:26.164367 exec   501     400     {TRUE}    ./{TRUE} ./{TRUE}\n",
    f"16:31:26.164368 exec   502     400     {TRUE}    FAILED ENOENT ./{TRUE}\n",
    f"16:31:26.164991 exit   501     400     {TRUE}    process exit 0 after 765.3µs\n",
    f"16:31:26.164992 exit   502/503 400     {TRUE}    thread exit 0 after 1.0µs\n",
    f"16:31:26.165020 reap   400     399     {STORM}   reaped 501 (exit 0)\n",
    f"16:31:26.165021 reap   400     399     {STORM}   reaped 777 (exit 0)\n",
    "*** 12 events lost (kernel buffer full; 12 in all): try a larger --buffer-size\n",
]


def test_count_pretty_reads_the_columns():
    assert counting.count_pretty(PRETTY_LINES, PIDS) == Counter(fork=1, exec=1, exit=1, reap=1)


BPFTRACE_LINES = [
    "Attaching 4 probes...\n",
    "READY\n",
    f"fork 400 501 {STORM}\n",
    f"fork 400 999 {STORM}\n",
    f"exec 501 400 {TRUE} ./{TRUE} ./{TRUE}\\x00\n",
    "exec 502 400 bash /bin/bash bash\\x00\n",
    f"exit 501 501 {TRUE} 0\n",
    f"exit 502 503 {TRUE} 0\n",  # a thread of 502
    "Lost 3 events\n",
]


def test_count_bpftrace():
    assert counting.count_bpftrace(BPFTRACE_LINES, PIDS) == Counter(fork=1, exec=1, exit=1)
    assert counting.event_lines(BPFTRACE_LINES, "bpftrace") == 6


FORKSTAT_LINES = [
    "Time     Event   PID Info   Duration Process\n",
    f"16:43:57 fork    400 parent          ./{STORM} 2 3 ./{TRUE} ./pids \n",
    f"16:43:57 fork    501 child           ./{STORM} 2 3 ./{TRUE} ./pids \n",
    f"16:43:57 fork    502 child           {TRUE}\n",
    f"16:43:57 exec    501                 {TRUE}\n",
    "16:43:57 exec    502                 <unknown>\n",
    "16:43:57 exit    501      0   0.000s <unknown>\n",
    "16:43:57 exit    502      0   1.200s /usr/bin/python3 someone-else.py\n",  # a reused pid
]


def test_count_forkstat_goes_by_pid_and_keeps_foreign_names_out():
    assert counting.count_forkstat(FORKSTAT_LINES, PIDS) == Counter(fork=2, exec=2, exit=1)
    assert counting.event_lines(FORKSTAT_LINES, "forkstat") == 7


def test_tally_expects_each_tools_kinds_per_spawn():
    tally = counting.Tally("proctrace")
    tally.add(100, Counter(fork=100, exec=100, exit=99, reap=100, signal=7), lost=0)
    tally.add(50, Counter(fork=50, exec=50, exit=50, reap=50), lost=None)
    doc = tally.as_json()
    assert doc["expected"] == 600
    assert doc["received"] == 599
    assert doc["missing"] == 1
    assert doc["reported_lost"] == 0
    assert doc["runs"] == 2
    assert doc["by_kind"] == {"fork": 150, "exec": 150, "exit": 149, "reap": 150}
    bt = counting.Tally("bpftrace")
    bt.add(10, Counter(fork=10, exec=10, exit=10, reap=10), lost=None)
    assert (bt.expected, bt.received, bt.lost) == (30, 30, None)


def test_overload_accounting_is_exact_and_signed():
    assert overload.overload_accounting(expected=1000, received=600, reported_lost=400) == 0
    assert overload.overload_accounting(expected=1000, received=600, reported_lost=300) == 100  # silently lost
    assert overload.overload_accounting(expected=1000, received=600, reported_lost=450) == -50  # over-counted
    assert overload.overload_accounting(expected=1000, received=600, reported_lost=None) is None


def test_storm_tree_events():
    # 888 spawns by 2 spawners, as `proctrace -- storm` reported them on a lossless run.
    assert storm.storm_tree_events(888, 2) == 3561


def test_cpu_list_size():
    assert lost_counter.cpu_list_size("0-1\n") == 2
    assert lost_counter.cpu_list_size("0") == 1
    assert lost_counter.cpu_list_size("0,2-3,8") == 4


def test_marginal_rate_cancels_the_start_up():
    # 0.2 s to start, then 100k events/s.
    assert stats.marginal_rate((10_000, 0.3), (50_000, 0.7)) == pytest.approx(100_000)
    assert stats.marginal_rate((10_000, 0.3), (10_000, 0.3)) is None
    assert stats.marginal_rate((10_000, None), (50_000, 0.7)) is None


# ---- the document and its targets ----------------------------------------------


def _startup(ready=0.45, bpftrace_ready=0.5, rss_kb=20_000, help_kb=15_000, help_bcc=False):
    """Section 8's figures (bench/startup.py), as run_startup summarises them."""
    return {
        "reps": 1,
        "steady_after_s": 2.0,
        "scripts/proctrace": {"median_ready_s": ready, "median_rss_kb": rss_kb},
        "proctrace": {"median_ready_s": ready - 0.01, "median_rss_kb": rss_kb},
        "bpftrace": {"median_ready_s": bpftrace_ready, "median_rss_kb": 110_000},
        "light": {"--help": {"peak_kb": help_kb, "imports_bcc": help_bcc}},
    }


def _document(
    slow_rate=98.5, bpftrace_rate=90.0, cpu=1.5, ready=0.6, lost=0, readback=None, kernel_lost=500, startup=None
):
    runs = {
        "untraced": [{"rate": 100.0}, {"rate": 100.0}],
        "proctrace": [{"rate": slow_rate, "ready_s": ready, "cpu_us_per_event": cpu, "lost": lost}],
        "proctrace -c (filtered)": [{"rate": 99.0, "lost": 0}],
        "bpftrace": [{"rate": bpftrace_rate, "ready_s": 0.5, "attach_s": 0.5, "lost": 0, "cpu_us_per_event": 20.0}],
        "forkstat": [{"rate": 95.0}],
        "proctrace -w": [{"rate": None, "error": "proctrace: cannot write FILE"}],
    }
    pt = counting.Tally("proctrace")
    pt.add(1000, Counter(fork=1000, exec=1000, exit=1000, reap=1000), lost=0)
    bt = counting.Tally("bpftrace")
    bt.add(1000, Counter(fork=1000, exec=1000, exit=990), lost=10)
    overload = [
        {
            "buffer": "ring",
            "size": "8K",
            "expected": 4000,
            "received": 3500,
            "reported_lost": 500,
            "kernel_lost": kernel_lost,
            "unaccounted": 0,
        }
    ]
    return results.results_document(
        settings={"quick": True, "reps": 1, "seconds": 1.0, "spawners": 2, "storm": "C"},
        host={"kernel": "6.18", "cpus": 2, "loadavg_start": [0.5, 0, 0], "loadavg_end": [0.7, 0, 0]},
        features={"record": True, "read": True, "quiet": True, "filter": True},
        runs=runs,
        tallies={"proctrace (counted)": pt, "bpftrace": bt},
        proctrace={
            "long_storm_s": 4.0,
            "long_storm_spawned": 7000,
            "rss_start_kb": 150000,
            "rss_after_long_storm_kb": 151000,
        },
        readback=readback or {"available": False, "reason": "n/a (no recording support yet)"},
        filtering={
            "available": True,
            "pattern": "x",
            "cpu_s_per_1k_spawns": 0.01,
            "unfiltered_cpu_s_per_1k_spawns": 0.05,
        },
        overload=overload,
        startup=startup or _startup(),
    )


def _statuses(doc):
    return {t["name"]: t["status"] for t in doc["targets"]}


def _judged(doc):
    """The statuses of `doc` judged again, after a test changed a section."""
    return {t.name: t.status for t in results.evaluate_targets(doc)}


def test_document_shape_survives_json():
    doc = _document()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == results.SCHEMA
    for key in (
        "settings",
        "host",
        "features",
        "storm",
        "events",
        "proctrace",
        "readback",
        "filtering",
        "overload",
        "flood",
        "targets",
    ):
        assert key in doc
    assert set(doc["events"]["bpftrace"]) >= {"expected", "received", "missing", "reported_lost", "kinds"}
    assert all(set(t) == {"name", "goal", "value", "status"} for t in doc["targets"])
    assert {t["status"] for t in doc["targets"]} <= {"pass", "fail", "n/a"}


def test_targets_pass_when_every_figure_is_within_them():
    statuses = _statuses(_document())
    assert statuses["zero lost, default buffers"] == "pass"
    assert statuses["storm slowdown (median)"] == "pass"
    assert statuses["slowdown vs bpftrace"] == "pass"
    assert statuses["CPU per event"] == "pass"
    assert statuses["CPU per event vs bpftrace"] == "pass"
    assert statuses["ready vs bpftrace (scripts/proctrace)"] == "pass"
    assert statuses["session RSS 2 s after ready"] == "pass"
    assert statuses["proctrace --help: peak RSS, bcc"] == "pass"
    assert statuses["reading back vs plain parse"] == "n/a"
    assert statuses["filtered trace cheaper (issue 5)"] == "pass"
    assert statuses["overload ring 8K: lost counted"] == "pass"


def test_targets_fail_on_each_miss():
    slow_start = _startup(ready=0.55, rss_kb=45_000, help_kb=30_000)
    statuses = _statuses(
        _document(slow_rate=85.0, bpftrace_rate=90.0, cpu=2.5, lost=3, kernel_lost=499, startup=slow_start)
    )
    assert statuses["zero lost, default buffers"] == "fail"
    assert statuses["storm slowdown (median)"] == "fail"
    assert statuses["slowdown vs bpftrace"] == "fail"
    assert statuses["CPU per event"] == "fail"  # 2.5 us > 2 us
    assert statuses["ready vs bpftrace (scripts/proctrace)"] == "fail"  # 0.55 s > 1.0 x 0.5 s
    assert statuses["session RSS 2 s after ready"] == "fail"  # 44 MiB > 40
    assert statuses["proctrace --help: peak RSS, bcc"] == "fail"  # 29 MiB > 25
    assert statuses["overload ring 8K: lost counted"] == "fail"


def test_reading_back_is_judged_against_the_plain_parse():
    def readback(rate, plain, reader=None):
        return {
            "available": True,
            "events_per_s": rate,
            "plain_parse_events_per_s": plain,
            "reader_events_per_s": reader,
        }

    assert _statuses(_document(readback=readback(150_000, 250_000)))["reading back vs plain parse"] == "pass"
    assert _statuses(_document(readback=readback(100_000, 250_000)))["reading back vs plain parse"] == "fail"


def test_issue_4_rate_is_judged_on_the_reader_alone():
    def readback(reader):
        return {"available": True, "events_per_s": 150_000, "plain_parse_events_per_s": 250_000,
                "reader_events_per_s": reader}  # fmt: skip

    assert _statuses(_document(readback=readback(180_000)))["reading back rate (issue 4)"] == "fail"
    assert _statuses(_document(readback=readback(230_000)))["reading back rate (issue 4)"] == "pass"
    assert _statuses(_document(readback=readback(None)))["reading back rate (issue 4)"] == "n/a"


def test_a_small_recording_is_judged_beyond_start_up():
    small = {
        "available": True,
        "events": 20_000,
        "events_per_s": 80_000,  # mostly interpreter start-up
        "plain_parse_events_per_s": 190_000,
        "steady_events_per_s": 150_000,
        "plain_parse_steady_events_per_s": 260_000,
    }
    targets = {t["name"]: t for t in _document(readback=small)["targets"]}
    assert targets["reading back vs plain parse"]["status"] == "pass"
    assert "beyond start-up" in targets["reading back vs plain parse"]["value"]
    large = dict(small, events=200_000)
    assert _statuses(_document(readback=large))["reading back vs plain parse"] == "fail"


def test_render_prints_every_section():
    from rich.console import Console

    doc = _document()
    out = io.StringIO()
    table.render(doc, Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    for heading in (
        "1. Storm rate",
        "2. Storm events",
        "3. Cost and start-up",
        "4. Reading back",
        "5. Filtering",
        "6. Overload",
        "7. Flood",
        "Targets",
    ):
        assert heading in text
    assert "n/a (no recording support yet)" in text
    assert "error: proctrace: cannot write FILE" in text


def test_disturbed_runs_are_repeated_within_the_budget(monkeypatch):
    outcomes = iter([True, True, True, True, True, False])
    calls = []

    def fake_measure(config, storm, seconds, workdir):
        calls.append(config.name)
        rep = {"rate": 100.0, "disturbed": next(outcomes), "foreign_tracers": ["bpftrace[1]"], "others_cpu_pct": 0}
        return measure.Measured(storm=None, rep=rep)

    monkeypatch.setattr(measure, "measure", fake_measure)
    monkeypatch.setattr(measure, "progress", lambda text: None)
    budget = measure.RetryBudget(3)
    config = tracers.Config("proctrace", "proctrace")
    first = measure.measure_undisturbed(config, None, 1.0, Path("/nonexistent"), budget)
    assert (first.rep["attempts"], first.rep["disturbed"], budget.left) == (3, True, 1)  # MAX_RETRIES reached
    second = measure.measure_undisturbed(config, None, 1.0, Path("/nonexistent"), budget)
    assert (second.rep["attempts"], second.rep["disturbed"], budget.left) == (2, True, 0)  # budget spent
    third = measure.measure_undisturbed(config, None, 1.0, Path("/nonexistent"), budget)
    assert (third.rep["attempts"], third.rep["disturbed"]) == (1, False)
    assert len(calls) == 6


def test_the_slowdown_target_says_how_many_runs_were_disturbed():
    doc = _document()
    doc["storm"]["proctrace"]["disturbed_runs"] = 1
    slowdown = next(t for t in results.evaluate_targets(doc) if t.name == "storm slowdown (median)")
    assert "1 of 3 runs disturbed" in slowdown.value


# ---- between runs ---------------------------------------------------------------


def _stopped_tracer(before: set[str]):
    tracer = object.__new__(tracers.TracerProcess)  # the waiting logic alone, no process
    tracer._tracers_before = before
    return tracer


def test_a_stopped_tracer_is_waited_for_until_its_probes_are_detached(monkeypatch):
    """proctrace detaches in a child after it exits: the next run must not start
    while those probes still fire (they would count against it)."""
    polls = iter([["ptbench[7]", "proctrace[42]"], ["ptbench[7]", "proctrace[42]"], ["ptbench[7]"]])
    seen = []

    def fake_tracers(_ours):
        seen.append(1)
        return next(polls)

    monkeypatch.setattr(tracers, "foreign_tracers", fake_tracers)
    monkeypatch.setattr(tracers.time, "sleep", lambda _s: None)
    _stopped_tracer({"ptbench[7]"})._wait_detached()
    assert len(seen) == 3  # waited through two polls that still saw the probes


def test_the_wait_for_detached_probes_gives_up_after_its_timeout(monkeypatch):
    clock = iter(range(0, 1000))
    monkeypatch.setattr(tracers, "foreign_tracers", lambda _ours: ["stuck[9]"])
    monkeypatch.setattr(tracers.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(tracers.time, "sleep", lambda _s: None)
    _stopped_tracer(set())._wait_detached(timeout=5.0)  # returns rather than hanging


def test_a_light_command_that_imports_bcc_fails_its_target_whatever_its_size():
    statuses = _statuses(_document(startup=_startup(help_kb=10_000, help_bcc=True)))
    assert statuses["proctrace --help: peak RSS, bcc"] == "fail"


def test_a_slowdown_of_three_percent_misses_issue_15s_target():
    assert _statuses(_document(slow_rate=97.0))["storm slowdown (median)"] == "fail"  # > 2%


def test_cpu_per_event_is_compared_with_bpftraces_in_the_same_run():
    row = next(t for t in results.evaluate_targets(_document(cpu=25.0)) if t.name == "CPU per event vs bpftrace")
    assert row.status == "fail" and "25.00 us vs 20.00 us (1.25x)" in row.value


def test_the_live_views_section_is_judged_on_its_slowdown_and_losses():
    doc = _document()
    top_summary = top.summary({"untraced": [100.0, 100.0, 100.0], "top": [99.0], "stream": [98.8], "lost": [0]})
    doc["top"] = top_summary
    statuses = _judged(doc)
    assert statuses["storm slowdown under --top (median)"] == "pass"
    assert statuses["lost under --top"] == "pass"
    doc["top"] = {**top_summary, "slowdown_pct": 4.0, "lost": 2}
    statuses = _judged(doc)
    assert statuses["storm slowdown under --top (median)"] == "fail"
    assert statuses["lost under --top"] == "fail"
    doc["top"] = {"available": False, "reason": "n/a (no tmux)"}
    assert _judged(doc)["storm slowdown under --top (median)"] == "n/a"
