"""Timing the reading back of a recording: `proctrace -r` (pretty and --json),
proctrace's reader alone and a plain json.loads loop, each a fresh process,
interleaved, over a large recording and a small one (so the readers' start-up
can be told apart from their rate)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError
from proctrace.bench.counting import recorded_events
from proctrace.bench.stats import marginal_rate, median
from proctrace.bench.tracers import proctrace_command


def time_command(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of running `argv`. Its CPU time comes from the
    rusage of waited-for children, so nothing else may be reaped meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv[:4])}... exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def reader_commands() -> dict[str, Callable[[Path], list[str]]]:
    """Each reader timed, as the command that reads one recording."""
    proctrace = proctrace_command()
    readers = [sys.executable, "-m", "proctrace.bench.readers"]
    return {
        "proctrace -r": lambda path: [*proctrace, "-r", str(path), "-o", "/dev/null"],
        "proctrace -r --json": lambda path: [*proctrace, "-r", str(path), "--json", "-o", "/dev/null"],
        "proctrace reader alone": lambda path: [*readers, "proctrace", str(path)],
        "plain json.loads": lambda path: [*readers, "plain", str(path)],
    }


def run_readback(large: Path, small: Path | None, reps: int) -> dict[str, Any]:
    """`proctrace -r` against a plain json.loads loop over the same file, each a
    fresh process (each pays its interpreter's start), interleaved. A small
    recording read the same way separates the start-up from the rate.

    Rates are events per CPU-second of the reader: on a shared machine its wall
    time measures the neighbours too; on an idle one the two agree (every reader
    is single-threaded). Wall times are kept in the figures.
    """
    files = {"large": large} | ({"small": small} if small is not None and small.exists() else {})
    events = {name: recorded_events(path) for name, path in files.items()}
    readers = reader_commands()
    times: dict[str, dict[str, list[float]]] = {r: {f: [] for f in files} for r in readers}
    walls: dict[str, dict[str, list[float]]] = {r: {f: [] for f in files} for r in readers}
    for _ in range(reps):
        for reader, argv in readers.items():
            for name, path in files.items():
                wall, cpu = time_command(argv(path))
                walls[reader][name].append(wall)
                times[reader][name].append(cpu)
    readers_out: dict[str, dict[str, Any]] = {}
    for reader in readers:
        med = {name: median(ts) for name, ts in times[reader].items()}
        t_large = med["large"]
        readers_out[reader] = {
            "cpu_s": times[reader],
            "wall_s": walls[reader],
            "median_s": med,
            "events_per_s": events["large"] / t_large if t_large else None,
            "steady_events_per_s": marginal_rate((events["small"], med["small"]), (events["large"], t_large))
            if "small" in files
            else None,
        }
    return {
        "available": True,
        "file_bytes": large.stat().st_size,
        "events": events["large"],
        "small_events": events.get("small"),
        "readers": readers_out,
        "events_per_s": readers_out["proctrace -r"]["events_per_s"],
        "json_events_per_s": readers_out["proctrace -r --json"]["events_per_s"],
        "plain_parse_events_per_s": readers_out["plain json.loads"]["events_per_s"],
        "steady_events_per_s": readers_out["proctrace -r"]["steady_events_per_s"],
        "reader_events_per_s": readers_out["proctrace reader alone"]["events_per_s"],
        "reader_steady_events_per_s": readers_out["proctrace reader alone"]["steady_events_per_s"],
        "plain_parse_steady_events_per_s": readers_out["plain json.loads"]["steady_events_per_s"],
    }
