"""A whole run of the bench, section by section: the interleaved timed storms
(1-3), the counted runs (2-3), reading back (4), filtering (5), overload (6),
the storm in a signal flood (7), start-up and footprint (8) and the storm
under the live view (9);
and what it needs around them: the plan, the features proctrace offers, the
host's facts (its temporary directory is bench.workspace's)."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError, progress
from proctrace.bench.counting import Tally, count_json
from proctrace.bench.flood import Flood
from proctrace.bench.flood_section import run_flood
from proctrace.bench.measure import RetryBudget, measure, measure_undisturbed
from proctrace.bench.overload import run_overload
from proctrace.bench.readback import run_readback
from proctrace.bench.results import results_document, source_checkout
from proctrace.bench.startup import run_startup
from proctrace.bench.stats import median
from proctrace.bench.storm import Storm
from proctrace.bench.top import run as run_top
from proctrace.bench.top import summary as top_summary
from proctrace.bench.tracers import Config, proctrace_command, recording_args

TOP_REPS_MAX = 4  # each --top run starts a tmux server and a session: ~1 s more than a stream's
NOMATCH_COMM = "ptbench-nomatch"  # the filtered run's pattern: matches nothing in the storm


def help_options(help_text: str) -> set[str]:
    """Option names (-w, --json, ...) that `proctrace --help` lists."""
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))


def features_from_help(help_text: str) -> dict[str, bool]:
    """Which sections proctrace can run: a section whose options it lacks says "n/a"."""
    opts = help_options(help_text)
    return {
        "record": "-w" in opts,
        "read": "-r" in opts,
        "quiet": "-q" in opts,
        "filter": "-c" in opts,
        "env": "--env" in opts,
    }


@dataclass
class Plan:
    quick: bool
    reps: int
    seconds: float
    long_seconds: float
    readback_reps: int
    nice: int = 0

    @classmethod
    def make(cls, quick: bool, reps: int | None, seconds: float | None, nice: int = 0) -> Plan:
        if quick:
            # More, short repetitions: the storm rate of one rep varies by a few
            # percent on a shared machine, as much as the slowdown being measured.
            return cls(True, reps or 5, seconds or 1.0, 3.0, 3, nice)
        return cls(False, reps or 7, seconds or 3.0, 20.0, 5, nice)


def timed_configs(
    features: dict[str, bool], tools: dict[str, str | None], workdir: Path, quick: bool = False
) -> list[Config]:
    """What the storm runs under. --quick keeps what the targets need; the full
    run adds --json and the perf buffer."""
    configs = [Config("untraced", "none"), Config("proctrace", "proctrace")]
    if not quick:
        configs += [
            Config("proctrace --json", "proctrace", ["--json"]),
            Config("proctrace --buffer perf", "proctrace", ["--buffer", "perf"]),
        ]
    if features["record"]:
        configs.append(Config("proctrace -w", "proctrace", recording_args(features, workdir / "timed.jsonl")))
    if features["filter"]:
        configs.append(Config("proctrace -c (filtered)", "proctrace", ["-c", NOMATCH_COMM]))
    if features.get("env"):
        # Each exec then carries its environment, read from the new image and redacted.
        configs.append(Config("proctrace --env", "proctrace", ["--env"]))
    if tools.get("bpftrace"):
        configs.append(Config("bpftrace", "bpftrace", output="bpftrace"))
    if tools.get("forkstat"):
        configs.append(Config("forkstat", "forkstat", ["-e", "fork,exec,exit"], output="forkstat"))
    return configs


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for tool, argv in {"bpftrace": ["bpftrace", "--version"], "forkstat": ["forkstat", "-h"]}.items():
        if not shutil.which(tool):
            versions[tool] = None
            continue
        done = subprocess.run(argv, capture_output=True, text=True)
        text = (done.stdout + done.stderr).strip().splitlines()
        versions[tool] = text[0] if text else tool
    return versions


def host_facts() -> dict[str, Any]:
    """The machine, and the commit measured when running from a checkout."""
    facts: dict[str, Any] = {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": None,
        "tracer_tree_dirty": None,
        "loadavg_start": list(os.getloadavg()),
    }
    checkout = source_checkout()
    if checkout is not None and shutil.which("git"):
        git = ["git", "-C", str(checkout)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "tracer", "bpf"], capture_output=True)
        facts["commit"] = commit.stdout.strip() or None
        facts["tracer_tree_dirty"] = bool(dirty.stdout.strip())
    return facts


def run_bench(plan: Plan, workdir: Path) -> dict[str, Any]:
    help_text = subprocess.run([*proctrace_command(), "--help"], capture_output=True, text=True).stdout
    features = features_from_help(help_text)
    tools = {t: shutil.which(t) for t in ("bpftrace", "forkstat")}
    host = host_facts()
    host["tools"] = tool_versions()
    storm = Storm(workdir)
    configs = timed_configs(features, tools, workdir, plan.quick)
    settings = dataclasses.asdict(plan) | {"spawners": storm.spawners, "storm": storm.kind}
    progress(f"storm: {storm.kind}, {storm.spawners} spawners; {plan.reps} reps of {plan.seconds:g} s")
    storm.run(0.5)  # warm-up: page cache, binaries

    # 1-3: interleaved repetitions, each opened by an untraced run; one more closes the last.
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    tallies: dict[str, Tally] = {}
    budget = RetryBudget(2 * plan.reps)
    for rep in range(plan.reps):
        for config in configs:
            progress(f"rep {rep + 1}/{plan.reps}: {config.name}")
            try:
                m = measure_undisturbed(config, storm, plan.seconds, workdir, budget)
            except BenchError as exc:
                if config.name in ("untraced", "proctrace"):
                    raise
                # A feature still being built must not sink the whole run: noted, skipped.
                progress(f"  {config.name} failed: {exc}")
                runs[config.name].append({"rate": None, "error": str(exc)[:500]})
                continue
            runs[config.name].append(m.rep)
            if m.counts is not None:
                tally = tallies.setdefault(config.name, Tally(config.tool))
                tally.add(m.storm.spawned, m.counts, m.rep.get("lost"))
    progress("closing untraced run")
    runs[configs[0].name].append(measure_undisturbed(configs[0], storm, plan.seconds, workdir, budget).rep)

    # 2-3: counted proctrace runs, the default one long (RSS after a long storm).
    counted = [(Config("proctrace", "proctrace", output="pretty"), plan.long_seconds)]
    if not plan.quick:
        perf = ["--buffer", "perf", "--json"]
        counted += [
            (Config("proctrace --json", "proctrace", ["--json"], output="json"), plan.seconds),
            (Config("proctrace --buffer perf", "proctrace", perf, output="json"), plan.seconds),
        ]
    recording = workdir / "recording.jsonl"
    if features["record"]:
        # The large recording that section 4 reads back: a long storm's worth.
        args = recording_args(features, recording)
        counted.append((Config("proctrace -w", "proctrace", args, output="null"), plan.long_seconds))
    proctrace: dict[str, Any] = {}
    for config, seconds in counted:
        progress(f"counted run: {config.name} ({seconds:g} s)")
        try:
            m = measure(config, storm, seconds, workdir, count=True)
        except BenchError as exc:
            if config.name == "proctrace":
                raise
            progress(f"  {config.name} failed: {exc}")
            continue
        if config.name == "proctrace -w" and recording.exists():
            with open(recording, errors="replace") as f:
                m.counts = count_json(f, m.storm.pids)
        if m.counts is not None:
            tally = Tally(config.tool)
            tally.add(m.storm.spawned, m.counts, m.rep.get("lost"))
            tallies[f"{config.name} (counted)"] = tally
        if m.output is not None:
            m.output.unlink(missing_ok=True)
        if config.name == "proctrace":
            proctrace = {
                "long_storm_s": seconds,
                "long_storm_spawned": m.storm.spawned,
                "rss_start_kb": m.rep["rss_start_kb"],
                "rss_after_long_storm_kb": m.rep["rss_end_kb"],
                "long_storm_cpu_us_per_event": m.rep.get("cpu_us_per_event"),
            }

    # 4: reading back.
    readback: dict[str, Any]
    if not (features["record"] and features["read"]):
        readback = {"available": False, "reason": "n/a (no recording support yet)"}
    elif not recording.exists():
        readback = {"available": False, "reason": "the recording run left no file"}
    else:
        progress("reading back")
        try:
            small = workdir / "timed.jsonl"  # the last timed -w run's
            readback = run_readback(recording, small, plan.readback_reps)
        except BenchError as exc:
            readback = {"available": False, "reason": f"error: {exc}"}
        recording.unlink()

    # 5: filtering, from the interleaved runs.
    filtering: dict[str, Any]
    if not features["filter"]:
        filtering = {"available": False, "reason": "n/a (no filtering support yet)"}
    else:
        f_runs, u_runs = runs["proctrace -c (filtered)"], runs["proctrace"]
        filtering = {
            "available": True,
            "pattern": NOMATCH_COMM,
            "cpu_s_per_1k_spawns": median(r.get("cpu_s_per_1k_spawns") for r in f_runs),
            "unfiltered_cpu_s_per_1k_spawns": median(r.get("cpu_s_per_1k_spawns") for r in u_runs),
        }

    # 6: overload.
    overload = []
    for buffer, size in (("ring", "8K"), ("perf", "4K")):
        progress(f"overload: {buffer} buffer of {size}")
        try:
            overload.append(run_overload(storm, plan.seconds, workdir, buffer, size))
        except BenchError as exc:
            overload.append({"buffer": buffer, "size": size, "error": str(exc)})

    # 7: the storm in a signal flood, as many repetitions as the timed storms: with
    # about five busy tasks on two CPUs its rates are noisier than the storm's alone.
    try:
        flood = run_flood(Flood(storm, shutil.which("strace")), plan.reps, plan.seconds, workdir)
    except BenchError as exc:
        progress(f"flood failed: {exc}")
        flood = {"available": False, "failed": True, "reason": f"error: {str(exc)[:500]}"}

    # 8: start-up and footprint, through each entry point, against bpftrace.
    progress("start-up and footprint")
    try:
        startup = run_startup(plan.reps, workdir, workdir / "timed.jsonl", bool(tools.get("bpftrace")))
    except BenchError as exc:
        startup = {"available": False, "reason": f"error: {str(exc)[:500]}"}

    # 9: the storm under the live view, drawn in a tmux pane, beside the plain stream.
    top: dict[str, Any]
    if not shutil.which("tmux"):
        top = {"available": False, "reason": "n/a (no tmux: scripts/setup --test-tools installs it)"}
    else:
        progress("the live view (--top in tmux)")
        try:
            top = top_summary(run_top(min(plan.reps, TOP_REPS_MAX), plan.seconds, workdir))
        except BenchError as exc:
            top = {"available": False, "failed": True, "reason": f"error: {str(exc)[:500]}"}

    host["loadavg_end"] = list(os.getloadavg())
    return results_document(
        settings, host, features, runs, tallies, proctrace, readback, filtering, overload, flood, startup, top
    )
