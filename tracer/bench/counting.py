"""Counting the storm's events in what each tracer wrote: proctrace's JSON lines
(and recordings), its pretty stream, bpftrace's lines and forkstat's, and each
tracer's own totals and loss reports.

The storm's events are picked out by the pids of the children it spawned (the
storm writes them) and by its comms. The JSON counter reads fields by name.
The pretty stream is read only for the counted run of proctrace's default
configuration, whose figures (losses, RSS) are those of the pretty stream; the
storm's comms hold no spaces, so its lines split into the stream's columns.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proctrace.bench.storm import KINDS, STORM_COMM, TRUE_COMM

EVENT_KINDS = ("fork", "exec", "exit", "signal", "reap")


def parse_summary(stderr: str) -> tuple[int, int] | None:
    """proctrace's closing line "proctrace: N events, M lost" -> (N, M)."""
    found = re.findall(r"proctrace: (\d+) events, (\d+) lost", stderr)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def parse_bpftrace_lost(text: str) -> int:
    """Sum of bpftrace's "Lost N events" warnings."""
    return sum(int(n) for n in re.findall(r"Lost (\d+) events", text))


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def json_records(lines: Iterable[str], marker: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of the lines that hold `marker` (a cheap test before parsing)."""
    for line in lines:
        if marker not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def storm_event_kind(ev: dict[str, Any], pids: set[int]) -> str | None:
    """The kind of a JSON event when it is one of the four of a storm child
    (its fork, exec, exit or reap), else None."""
    kind, comm = ev.get("type"), ev.get("comm")
    if kind == "fork":
        ok = comm == STORM_COMM and not ev.get("thread") and ev.get("child_pid") in pids
    elif kind == "exec":
        ok = comm == TRUE_COMM and ev.get("errno") is None and ev.get("pid") in pids
    elif kind == "exit":
        ok = comm == TRUE_COMM and bool(ev.get("process_exit")) and ev.get("pid") in pids
    else:
        ok = kind == "reap" and comm == STORM_COMM and ev.get("reaped_pid") in pids
    return kind if ok else None


def count_json(lines: Iterable[str], pids: set[int]) -> Counter[str]:
    """The storm's events in proctrace --json output (or a JSON Lines recording)."""
    counts: Counter[str] = Counter()
    for ev in json_records(lines, "ptbench"):
        kind = storm_event_kind(ev, pids)
        if kind is not None:
            counts[kind] += 1
    return counts


def count_pretty(lines: Iterable[str], pids: set[int]) -> Counter[str]:
    """The storm's events in proctrace's default output: TIME KIND PID PPID COMM DETAIL."""
    counts: Counter[str] = Counter()
    for line in lines:
        if "ptbench" not in line:
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        _, kind, pid_field, _, comm, detail = parts
        pid = _int(pid_field)  # "tgid/tid" for a thread: never the storm's
        words = detail.split()
        other = _int(words[1]) if len(words) >= 2 else None  # the child forked, or the zombie reaped
        if kind == "fork":
            if comm == STORM_COMM and words[0] == "process" and other in pids:
                counts["fork"] += 1
        elif kind == "exec":
            if comm == TRUE_COMM and pid in pids and not detail.startswith("FAILED"):
                counts["exec"] += 1
        elif kind == "exit":
            if comm == TRUE_COMM and pid in pids and words[:1] == ["process"]:
                counts["exit"] += 1
        elif kind == "reap" and comm == STORM_COMM and words[0] == "reaped" and other in pids:
            counts["reap"] += 1
    return counts


def count_bpftrace(lines: Iterable[str], pids: set[int]) -> Counter[str]:
    """The storm's events in the output of the bench's bpftrace program (capture.bt)."""
    counts: Counter[str] = Counter()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 4 or "ptbench" not in line:
            continue
        kind = parts[0]
        if kind == "fork" and parts[3] == STORM_COMM and _int(parts[2]) in pids:
            counts["fork"] += 1
        elif kind == "exec" and len(parts) >= 4 and parts[3] == TRUE_COMM and _int(parts[1]) in pids:
            counts["exec"] += 1
        elif kind == "exit" and parts[3] == TRUE_COMM and parts[1] == parts[2] and _int(parts[1]) in pids:
            counts["exit"] += 1
    return counts


def count_forkstat(lines: Iterable[str], pids: set[int]) -> Counter[str]:
    """The storm's events in `forkstat -e fork,exec,exit` output.

    forkstat names a process by reading /proc/<pid>/cmdline when the event
    arrives, which races with the process: a storm child shows as the storm, as
    ptbench-true or as <unknown>. Pids identify it; the name only keeps a
    foreign process that reused a storm pid out.
    """
    counts: Counter[str] = Counter()
    for line in lines:
        parts = line.split(None, 4)
        if len(parts) < 4:
            continue
        kind, pid = parts[1], _int(parts[2])
        if pid not in pids or not ("ptbench" in line or "<unknown>" in line or len(parts) == 4):
            continue
        if kind == "fork":
            if parts[3] == "child":
                counts["fork"] += 1
        elif kind in ("exec", "exit"):
            counts[kind] += 1
    return counts


COUNTERS: dict[str, Callable[[Iterable[str], set[int]], Counter[str]]] = {
    "json": count_json,
    "pretty": count_pretty,
    "bpftrace": count_bpftrace,
    "forkstat": count_forkstat,
}


def event_lines(lines: list[str], fmt: str) -> int:
    """Lines of a tracer's output that are events (of any process), not headers or warnings."""
    if fmt == "bpftrace":
        return sum(1 for line in lines if line[:5] in ("fork ", "exec ", "exit "))
    if fmt == "forkstat":
        return sum(1 for line in lines if line[9:14] in ("fork ", "exec ", "exit "))
    if fmt == "json":
        return sum(1 for line in lines if '"type"' in line and '"type":"lost"' not in line)
    return max(len(lines) - 1, 0)  # pretty: less the header


def count_file(path: Path, fmt: str, pids: set[int]) -> tuple[Counter[str], int]:
    """(the storm's events by kind, event lines of all processes) in a tracer's output file."""
    with open(path, errors="replace") as f:
        lines = f.readlines()
    return COUNTERS[fmt](lines, pids), event_lines(lines, fmt)


def recorded_events(path: Path) -> int:
    """Event records in a JSON Lines recording (not its header, trailer or loss reports)."""
    n = 0
    with open(path, errors="replace") as f:
        for line in f:
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                n += isinstance(ev, dict) and ev.get("type") in EVENT_KINDS
    return n


@dataclass
class Tally:
    """Events one tracer should have seen for the storm, and what it saw."""

    tool: str
    expected: int = 0
    received: int = 0
    lost: int | None = None  # what the tracer reported lost (all events, not only the storm's)
    by_kind: Counter[str] = field(default_factory=Counter)
    runs: int = 0

    def add(self, spawned: int, counts: Counter[str], lost: int | None) -> None:
        kinds = KINDS[self.tool]
        self.expected += spawned * len(kinds)
        self.received += sum(counts[k] for k in kinds)
        self.by_kind.update({k: counts[k] for k in kinds})
        if lost is not None:
            self.lost = (self.lost or 0) + lost
        self.runs += 1

    @property
    def missing(self) -> int:
        return self.expected - self.received

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "kinds": list(KINDS[self.tool]),
            "runs": self.runs,
            "expected": self.expected,
            "received": self.received,
            "missing": self.missing,
            "reported_lost": self.lost,
            "by_kind": dict(self.by_kind),
        }
