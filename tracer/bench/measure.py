"""One storm under one configuration: the storm's rate, and the tracer's start-up,
CPU time, RSS, totals and (when counted) the storm's events in its output;
repeated when the neighbours disturbed it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError, progress
from proctrace.bench.counting import count_file, parse_bpftrace_lost, parse_summary
from proctrace.bench.machine import Watch, cpu_seconds, rss_kb
from proctrace.bench.storm import Storm, StormResult
from proctrace.bench.tracers import Config, start_tracer

MAX_RETRIES = 2


@dataclass
class Measured:
    storm: StormResult
    rep: dict[str, Any]
    counts: Counter[str] | None = None
    lines: int | None = None
    stderr: str = ""
    output: Path | None = None


def measure(config: Config, storm: Storm, seconds: float, workdir: Path, count: bool = False) -> Measured:
    """One storm under `config`; with `count`, the tracer's output is kept and counted."""
    if config.tool == "none":
        watch = Watch(None)
        result = storm.run(seconds)
        return Measured(result, {"rate": result.rate, "spawned": result.spawned, **watch.finish(0.0)})
    to_file = (count and config.output != "null") or config.tool in ("bpftrace", "forkstat")
    tracer, out = start_tracer(config, workdir, to_file)
    try:
        tracer.wait_ready()
        cpu0, rss0 = cpu_seconds(tracer.pid), rss_kb(tracer.pid)
        watch = Watch(tracer.pid)
        result = storm.run(seconds)
        cpu1, rss1 = cpu_seconds(tracer.pid), rss_kb(tracer.pid)
        disturbance = watch.finish(None if cpu0 is None or cpu1 is None else cpu1 - cpu0)
    finally:
        code = tracer.stop()
    stderr = tracer.stderr
    rep: dict[str, Any] = {
        "rate": result.rate,
        "spawned": result.spawned,
        **disturbance,
        "ready_s": tracer.ready_s,
        "attach_s": tracer.attach_s,
        "cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "rss_start_kb": rss0,
        "rss_end_kb": rss1,
        "exit_code": code,
    }
    measured = Measured(result, rep, stderr=stderr, output=out)
    if config.tool == "proctrace":
        summary = parse_summary(stderr)
        if summary is None:
            raise BenchError(f"{config.name}: no closing summary (exit {code}): {stderr.strip()[-500:]}")
        rep["events"], rep["lost"] = summary
    if out is not None and config.output != "null":
        counts, lines = count_file(out, config.output, result.pids)
        measured.counts, measured.lines = counts, lines
        if config.tool == "bpftrace":
            rep["lost"] = parse_bpftrace_lost(stderr) + parse_bpftrace_lost(out.read_text(errors="replace"))
        if config.tool != "proctrace":
            rep["events"] = lines
    if rep.get("events") and rep["cpu_s"] is not None:
        rep["cpu_us_per_event"] = rep["cpu_s"] / rep["events"] * 1e6
    if rep["cpu_s"] is not None and result.spawned:
        rep["cpu_s_per_1k_spawns"] = rep["cpu_s"] / result.spawned * 1000
    if out is not None and not count:
        out.unlink(missing_ok=True)
    return measured


@dataclass
class RetryBudget:
    """Repeats left for the whole bench: a neighbour that keeps a tracer attached
    the whole time would otherwise triple the run for nothing."""

    left: int


def measure_undisturbed(config: Config, storm: Storm, seconds: float, workdir: Path, budget: RetryBudget) -> Measured:
    """measure(), repeated (at most MAX_RETRIES times, within `budget`) while another
    BPF tracer was attached or other processes took a large share of the CPUs: the
    neighbours' load is not the tracer's cost."""
    attempt = 0
    while True:
        m = measure(config, storm, seconds, workdir)
        m.rep["attempts"] = attempt + 1
        if not m.rep["disturbed"]:
            return m
        again = attempt < MAX_RETRIES and budget.left > 0
        why = ", ".join(m.rep["foreign_tracers"]) or f"others used {m.rep['others_cpu_pct']:.0f}% of the CPUs"
        progress(f"  disturbed ({why})" + ("; again" if again else "; kept, flagged"))
        if not again:
            return m
        budget.left -= 1
        attempt += 1
