"""The critical path of a process tree: the chain of processes that bounds its
wall time. For a build, the steps that made it as long as it was.

Walking back from the end of the root's life, the path stays in the current
process until the latest of its children that had ended by then; it goes into
that child for the whole of the child's life, then comes back to the parent
at the child's start, and goes on backwards the same way. Children that ran
beside the chosen one (they ended after it started) are not on the path: they
were not what was waited for. Every moment of the root's life is on the path
once, in exactly one process, so the shares add up to the whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proctrace.model.process_table import Process


@dataclass(frozen=True, slots=True)
class PathStep:
    """Time on the critical path spent in one process, between two moments."""

    process: Process
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def _span(rec: Process) -> tuple[int, int] | None:
    if rec.end_ns is None or not rec.start_ns or rec.end_ns < rec.start_ns:
        return None
    return rec.start_ns, rec.end_ns


def critical_path(root: Process, children: Mapping[int, list[Process]]) -> list[PathStep]:
    """The path through `root`'s tree (children: ProcessTable.children_index), in
    time order; [] when the root's life is not known whole (it ran on, or its
    start was not seen)."""
    span = _span(root)
    if span is None:
        return []
    steps: list[PathStep] = []
    # (process, its start, the moment to walk back from): not recursive, a
    # chain of forks may be thousands deep.
    work: list[tuple[Process, int, int]] = [(root, span[0], span[1])]
    while work:
        rec, start, cursor = work.pop()
        # Latest end first (on a tie, the earlier start): the walk back takes
        # each child whose end it reaches, then jumps to that child's start.
        ended = sorted(
            ((s, c) for c in children.get(rec.serial, ()) if (s := _span(c)) is not None and s[0] >= start),
            key=lambda item: (-item[0][1], item[0][0]),
        )
        pending: list[tuple[Process, int, int]] = []
        for (c_start, c_end), child in ended:
            if c_end > cursor:
                continue  # it ran beside the one the walk went into: not waited for
            if cursor > c_end:
                steps.append(PathStep(rec, c_end, cursor))  # the parent's own time after the child ended
            pending.append((child, c_start, c_end))
            cursor = c_start
        if cursor > start:
            steps.append(PathStep(rec, start, cursor))
        work.extend(pending)
    steps.sort(key=lambda step: step.start_ns)
    return steps


def shares(steps: list[PathStep]) -> list[tuple[Process, int]]:
    """Time on the path per process, in the order each first appears on it."""
    totals: dict[int, tuple[Process, int]] = {}
    for step in steps:
        rec, total = totals.get(step.process.serial, (step.process, 0))
        totals[step.process.serial] = (rec, total + step.duration_ns)
    return list(totals.values())
