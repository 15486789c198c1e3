"""Section 8: start-up and footprint, as users meet them.

Interleaved repetitions of, each time:
  - the README's command, `scripts/proctrace -o /dev/null` (from a checkout);
  - the installed `proctrace -o /dev/null`;
  - the installed one with an empty program cache (PROCTRACE_CACHE_DIR), so
    that the BPF programs are compiled, by the loader helper: a first run;
  - bpftrace with its equivalent program (capture.bt), to the line its BEGIN
    prints once every probe is attached.
For each, the time from start to ready; for proctrace also, two seconds after
ready, the RSS of the tracer and every process under it, and the tracer's own
peak (VmHWM). The cold start samples the RSS of the tracer and its helper
every few milliseconds until ready: the compiler's peak, which lasts only
while the helper lives. And what `--help` and `-r FILE` cost: their peak RSS
(wait4's rusage) and whether they import bcc.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError, progress
from proctrace.bench.machine import rss_kb
from proctrace.bench.results import source_checkout
from proctrace.bench.stats import median
from proctrace.bench.tracers import PROCTRACE_READY, TracerProcess, bpftrace_program, proctrace_command

STEADY_AFTER_S = 2.0
SAMPLE_S = 0.005


def _descendants(pid: int) -> list[int]:
    """`pid` and every process under it, from /proc's children lists."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def tree_rss_kb(pid: int) -> int:
    return sum(rss_kb(p) or 0 for p in _descendants(pid))


def peak_kb(pid: int) -> int | None:
    return rss_kb(pid, "VmHWM")


def entry_points() -> dict[str, tuple[list[str], bool]]:
    """Each way of starting proctrace measured: its command, and whether it
    starts with an empty program cache (a first run)."""
    points: dict[str, tuple[list[str], bool]] = {}
    checkout = source_checkout()
    if checkout is not None and (checkout / "scripts" / "proctrace").is_file():
        points["scripts/proctrace"] = ([str(checkout / "scripts" / "proctrace"), "-o", "/dev/null"], False)
    points["proctrace"] = ([*proctrace_command(), "-o", "/dev/null"], False)
    points["proctrace, cold cache"] = ([*proctrace_command(), "-o", "/dev/null"], True)
    return points


def _one_proctrace(argv: list[str], env: dict[str, str] | None, cold: bool) -> dict[str, Any]:
    tracer = TracerProcess(argv, ready_stderr=PROCTRACE_READY, env=env)
    try:
        start_peak = 0
        if cold:  # the helper lives only until ready: sample the tree meanwhile
            while tracer.ready_s is None and tracer.proc.poll() is None:
                start_peak = max(start_peak, tree_rss_kb(tracer.pid))
                time.sleep(SAMPLE_S)
        tracer.wait_ready()
        time.sleep(STEADY_AFTER_S)
        rep = {
            "ready_s": tracer.ready_s,
            "rss_kb": tree_rss_kb(tracer.pid),
            "processes": len(_descendants(tracer.pid)),
            "peak_kb": peak_kb(tracer.pid),
        }
        if cold:
            rep["start_peak_kb"] = start_peak
        return rep
    finally:
        tracer.stop()


def _one_bpftrace(workdir: Path) -> dict[str, Any]:
    out = workdir / "startup-bpftrace.out"
    tracer = TracerProcess(["bpftrace", "-e", bpftrace_program()], stdout=out, ready_file="READY")
    try:
        tracer.wait_ready()
        time.sleep(STEADY_AFTER_S)
        return {"ready_s": tracer.ready_s, "rss_kb": tree_rss_kb(tracer.pid)}
    finally:
        tracer.stop()
        out.unlink(missing_ok=True)


GNU_TIME = "/usr/bin/time"


def _peak_of(argv: list[str]) -> int:
    """The peak RSS of a command run to its end, in KiB, as GNU time reports it.
    Not from our own wait4: a child's ru_maxrss keeps the peak of the image it
    was forked as, which here is the bench's, across the exec; time forks the
    command from its own small image."""
    done = subprocess.run(
        [GNU_TIME, "-f", "PEAK %M", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120
    )
    for line in reversed(done.stderr.splitlines()):
        if line.startswith("PEAK "):
            return int(line.split()[1])
    raise BenchError(f"{GNU_TIME} gave no peak for {argv[0]}: {done.stderr[-300:]}")


def _imports_bcc(argv: list[str]) -> bool:
    """Whether a command imports bcc, from Python's own -X importtime list."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120).stderr
    return any(line.rsplit("|", 1)[-1].strip().split(".")[0] == "bcc" for line in err.splitlines() if "|" in line)


def run_startup(reps: int, workdir: Path, recording: Path | None, bpftrace: bool) -> dict[str, Any]:
    points = entry_points()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in points}
    if bpftrace:
        runs["bpftrace"] = []
    for rep in range(reps):
        for name, (argv, cold) in points.items():
            progress(f"start-up rep {rep + 1}/{reps}: {name}")
            with tempfile.TemporaryDirectory(prefix="ptbench-cache-", dir=workdir) as cache:
                run_env = {**os.environ, "PROCTRACE_CACHE_DIR": cache} if cold else None
                runs[name].append(_one_proctrace(argv, run_env, cold))
        if bpftrace:
            progress(f"start-up rep {rep + 1}/{reps}: bpftrace")
            runs["bpftrace"].append(_one_bpftrace(workdir))
    summary: dict[str, Any] = {"reps": reps, "steady_after_s": STEADY_AFTER_S, "runs": runs}
    for name, reps_of in runs.items():
        summary[name] = {
            "median_ready_s": median(r["ready_s"] for r in reps_of),
            "median_rss_kb": median(r["rss_kb"] for r in reps_of),
            "max_peak_kb": max((r.get("peak_kb") or 0 for r in reps_of), default=None) or None,
            "max_start_peak_kb": max((r.get("start_peak_kb") or 0 for r in reps_of), default=None) or None,
        }
    bt = summary.get("bpftrace", {}).get("median_ready_s")
    for name in points:
        ready = summary[name]["median_ready_s"]
        summary[name]["ready_vs_bpftrace"] = ready / bt if ready and bt else None
    light = {}
    python = proctrace_command()
    commands = {"--help": [*python, "--help"]}
    if recording is not None and recording.exists():
        commands["-r"] = [*python, "-r", str(recording), "-o", "/dev/null"]
    for name, argv in commands.items():
        light[name] = {"peak_kb": _peak_of(argv), "imports_bcc": _imports_bcc(argv)}
    summary["light"] = light
    return summary
