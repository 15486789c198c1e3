"""The overload section: a tiny buffer under the storm, where every event must be
either received or counted lost, and the count proctrace reports must equal the
kernel's own counter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proctrace.bench.counting import count_json, event_lines, parse_summary
from proctrace.bench.lost_counter import LostCounter
from proctrace.bench.storm import Storm, storm_tree_events
from proctrace.bench.tracers import command_session


def overload_accounting(expected: int, received: int, reported_lost: int | None) -> int | None:
    """Events neither received nor counted lost (negative: more received and lost
    than there were). Zero when every lost event is counted and nothing else is."""
    if reported_lost is None:
        return None
    return expected - received - reported_lost


def run_overload(storm: Storm, seconds: float, workdir: Path, buffer: str, size: str) -> dict[str, Any]:
    """A tiny buffer under the storm, traced as `proctrace -- STORM` so that only the
    storm's tree submits events: then received + lost must equal the tree's events
    exactly, and the count proctrace reports must equal the kernel's counter, read
    after proctrace has exited (no program can add to it then)."""
    out, storm_out = workdir / f"overload-{buffer}.json", workdir / "overload-storm.out"
    args = ["--json", "--buffer", buffer, "--buffer-size", size, "-o", str(out)]
    with command_session(args, storm.argv(seconds), storm_out) as tracer:
        counter = LostCounter(tracer.pid)
        try:
            tracer.wait_exit(seconds + 120)  # proctrace ends when the storm does
            code = tracer.stop()
            kernel = counter.read()
        finally:
            counter.close()
    summary = parse_summary(tracer.stderr)
    if code != 0 or summary is None:
        return {"buffer": buffer, "size": size, "error": f"exit {code}: {tracer.stderr.strip()[-500:]}"}
    result = storm.collect(storm_out.read_text())
    with open(out, errors="replace") as f:
        lines = f.readlines()
    out.unlink()
    counts = count_json(lines, result.pids)
    received = event_lines(lines, "json")
    expected = storm_tree_events(result.spawned, storm.spawners)
    events, lost = summary
    return {
        "buffer": buffer,
        "size": size,
        "spawned": result.spawned,
        "expected": expected,
        "received": received,
        "events_reported": events,
        "reported_lost": lost,
        "kernel_lost": kernel,
        "unaccounted": overload_accounting(expected, received, lost),
        "storm_children_by_kind": dict(counts),
    }
