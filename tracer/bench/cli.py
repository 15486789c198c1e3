"""The bench's command line: ``python -m proctrace.bench [--quick] [--results FILE] ...``
(``sudo ./scripts/bench`` in a checkout), as root.

The machines are shared and noisy, so every rate is a ratio to untraced runs
measured in the same run: repetitions are interleaved (untraced, proctrace, ...,
bpftrace, forkstat, untraced, ...), each compared with the untraced runs that
open and close it, and medians taken. Everything measured runs at nice -10, and a
timed run during which another BPF tracer was attached, or other processes used
over 10% of the CPUs, is repeated (twice at most, then kept and flagged).

The tracers run system-wide, as users run them; their events for the storm are
picked out by the storm's own list of child pids and by comm. The overload test
runs `proctrace -- STORM` instead, so that only the storm's events compete for
the tiny buffer and received + lost must add up exactly; the flood section
runs `proctrace --json -o FILE -- FLOOD` (the storm, a kill loop and a process
under strace) for the same reason. Sections that need
features proctrace lacks (recording -w/-r, filtering -c) say "n/a".
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from proctrace.bench import BenchError
from proctrace.bench.results import default_results_path, write_results
from proctrace.bench.run import Plan, run_bench
from proctrace.bench.table import render
from proctrace.bench.workspace import workspace

# Shared machines: everything measured runs at this niceness (see main()).
DEFAULT_NICE = -10


def parser() -> argparse.ArgumentParser:
    results = default_results_path()
    p = argparse.ArgumentParser(
        prog="python -m proctrace.bench",
        description="Measure proctrace's overhead, losses, cost and start-up against bpftrace and forkstat "
        "under a fork/exec/exit storm, and the storm inside a signal flood. Runs as root; prints a table "
        "and writes the figures as JSON.",
        epilog=f"Results go to --results FILE; by default {results} (in a checkout: .bench/results.json, "
        "ignored by git; installed: $XDG_STATE_HOME/proctrace/bench-results.json). "
        "The soak is python -m proctrace.bench.soak.",
    )
    p.add_argument("--quick", action="store_true", help="fewer, shorter repetitions: about two minutes")
    p.add_argument("--reps", type=int, help="interleaved repetitions (default: 5 quick, 7 full)")
    p.add_argument("--seconds", type=float, help="storm length per repetition (default: 1 quick, 3 full)")
    p.add_argument(
        "--results", "--out", type=Path, default=results, metavar="FILE", help=f"JSON results (default: {results})"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=DEFAULT_NICE,
        help=f"niceness of everything measured (default {DEFAULT_NICE}; 0 to share the machine evenly)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (it loads BPF programs)", file=sys.stderr)
        return 1
    plan = Plan.make(args.quick, args.reps, args.seconds, args.nice)
    # The storm, the tracers and the readers all inherit it: their shares of the
    # CPUs stay as they are among themselves, while the neighbours' load moves
    # the figures less.
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    started = time.monotonic()
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        with workspace() as workdir:
            doc = run_bench(plan, workdir)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    doc["settings"]["started"] = when
    doc["settings"]["elapsed_s"] = round(time.monotonic() - started, 1)
    doc["settings"]["command"] = "python -m proctrace.bench" + (" --quick" if args.quick else "")
    write_results(doc, args.results)
    render(doc)
    print(f"bench: {doc['settings']['elapsed_s']:g} s; figures in {args.results}", file=sys.stderr)
    return 1 if any(t["status"] == "fail" for t in doc["targets"]) else 0
