"""The kernel side's own cost: ``python -m proctrace.bench.bpftime [--reps N] [--seconds S]``, as root.

The storm slowdown mixes two costs: the BPF programs that run inside every
fork, exec and exit, and the session's CPU. This bench measures the first
alone, from the kernel's own accounts: with ``kernel.bpf_stats_enabled`` on,
the kernel counts each program's runs and the time spent in them, which
bpftool reports (``run_cnt``, ``run_time_ns``). The bench's storm runs under
``proctrace -o /dev/null`` (the README's command, to no terminal) N times;
for each program, by the tracepoints it is attached to, it prints the
median time per run and per storm process, and their total per process.
The statistics are on only while the storm runs (they cost a clock read per
run) and are put back as they were; no file of the checkout is modified.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError, progress
from proctrace.bench.stats import median
from proctrace.bench.storm import Storm
from proctrace.bench.tracers import Config, start_tracer
from proctrace.bench.workspace import interleaved_main

STATS_SWITCH = Path("/proc/sys/kernel/bpf_stats_enabled")


@dataclass(frozen=True)
class ProgramRun:
    """One program's share of one storm: the tracepoints it is attached to,
    and its runs and nanoseconds in them while the storm ran."""

    tracepoints: str
    runs: int
    ns: int


def _bpftool(*args: str) -> Any:
    done = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"bpftool {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return json.loads(done.stdout or "[]")


def attached_programs(perf_entries: list[dict[str, Any]], pid: int) -> dict[int, str]:
    """Program id -> the tracepoints `pid` holds it attached to, joined with "+"
    (one program serves both exits of execve and execveat, for instance)."""
    names: dict[int, list[str]] = {}
    for entry in perf_entries:
        if entry.get("pid") != pid or "prog_id" not in entry:
            continue
        name = entry.get("tracepoint") or entry.get("raw_tracepoint") or entry.get("func") or "?"
        names.setdefault(entry["prog_id"], [])
        if name not in names[entry["prog_id"]]:
            names[entry["prog_id"]].append(name)
    return {prog: "+".join(sorted(tps)) for prog, tps in names.items()}


def program_stats(programs: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Program id -> (run_cnt, run_time_ns), as `bpftool prog show` reports them."""
    return {p["id"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0)) for p in programs if "id" in p}


def storm_share(
    names: dict[int, str], before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> list[ProgramRun]:
    """What each of `names`' programs ran between the two readings."""
    out = []
    for prog, tracepoints in sorted(names.items(), key=lambda kv: kv[1]):
        runs0, ns0 = before.get(prog, (0, 0))
        runs1, ns1 = after.get(prog, (runs0, ns0))
        out.append(ProgramRun(tracepoints, runs1 - runs0, ns1 - ns0))
    return out


@contextmanager
def bpf_stats(switch: Path = STATS_SWITCH) -> Iterator[None]:
    """The kernel's run-time statistics of BPF programs, on; afterwards as they were."""
    before = switch.read_text().strip()
    switch.write_text("1\n")
    try:
        yield
    finally:
        switch.write_text(f"{before}\n")


def run(reps: int, seconds: float, workdir: Path) -> dict[str, Any]:
    storm = Storm(workdir)
    figures: dict[str, Any] = {"reps": []}
    for rep in range(reps):
        progress(f"rep {rep + 1}/{reps}")
        tracer, _ = start_tracer(Config("proctrace", "proctrace"), workdir, False)
        try:
            tracer.wait_ready()
            names = attached_programs(_bpftool("perf", "list"), tracer.pid)
            if not names:
                raise BenchError(f"bpftool lists no program attached by proctrace (pid {tracer.pid})")
            with bpf_stats():
                before = program_stats(_bpftool("prog", "show"))
                result = storm.run(seconds)
                after = program_stats(_bpftool("prog", "show"))
        finally:
            tracer.stop()
        figures["reps"].append({"spawned": result.spawned, "programs": storm_share(names, before, after)})
    return figures


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """Per tracepoint: the median ns per run and per storm process over the
    reps; and the median over the reps of all programs' ns per process."""
    per_run: dict[str, list[float]] = {}
    per_process: dict[str, list[float]] = {}
    totals = []
    for rep in figures["reps"]:
        spawned = rep["spawned"]
        if not spawned:
            continue
        total = 0.0
        for p in rep["programs"]:
            if p.runs:
                per_run.setdefault(p.tracepoints, []).append(p.ns / p.runs)
            per_process.setdefault(p.tracepoints, []).append(p.ns / spawned)
            total += p.ns / spawned
        totals.append(total)
    return {
        "programs": {
            name: {"ns_per_run": median(per_run.get(name, [])), "ns_per_process": median(values)}
            for name, values in sorted(per_process.items())
        },
        "total_ns_per_process": median(totals),
    }


def report(figures: dict[str, Any]) -> list[str]:
    s = summary(figures)
    lines = [f"{'tracepoint(s)':44} {'ns/run':>8} {'ns/process':>11}"]
    for name, row in s["programs"].items():
        if not row["ns_per_process"]:
            continue  # never ran in the storm (cgroup events, OOM kills...)
        per_run = "n/a" if row["ns_per_run"] is None else f"{row['ns_per_run']:.0f}"
        lines.append(f"{name:44} {per_run:>8} {row['ns_per_process']:>11.0f}")
    total = s["total_ns_per_process"]
    reps = len(figures["reps"])
    words = "n/a" if total is None else f"{total / 1000:.2f} us"
    lines.append(f"BPF time per storm process: {words} (median of {reps})")
    return lines


def _needs() -> str | None:
    if shutil.which("bpftool") is None:
        return "needs bpftool (scripts/setup --test-tools installs it)"
    if not STATS_SWITCH.exists():
        return f"this kernel has no {STATS_SWITCH}"
    return None


def main(argv: list[str] | None = None) -> int:
    return interleaved_main(argv, "python -m proctrace.bench.bpftime", __doc__ or "", 3, run, report, _needs)


if __name__ == "__main__":
    sys.exit(main())
