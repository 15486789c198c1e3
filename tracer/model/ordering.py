"""Putting events back in kernel-timestamp order, with bounded delay.

The perf buffer has one buffer per CPU, so a batch drained from it interleaves
CPUs: measured here, 20-50% of events were out of order by up to ~13 ms, and an
exec arrived before its fork hundreds of times per 10k processes. The ring
buffer is one stream but still has rare inversions of under 0.15 ms (the
timestamp is taken before the slot is reserved).

The BPF programs submit synchronously, so once a drain that started at time D
has run, every event stamped before D minus a small margin (the time between
taking the timestamp and submitting) has arrived. Events up to that watermark
are released in timestamp order; the rest wait for the next drain. The delay
this adds is the drain interval plus the margin, and memory is bounded by the
events of one interval.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from operator import attrgetter

from proctrace.model.events import Event

# Longest expected gap between an event's timestamp and its submission: the
# exec program reads up to ~32 KiB of arguments in between.
SUBMIT_MARGIN_NS = 5_000_000

_ts = attrgetter("ts_ns")


class Reorderer:
    def __init__(self, margin_ns: int = SUBMIT_MARGIN_NS) -> None:
        self.margin_ns = margin_ns
        self._pending: list[Event] = []

    def push(self, events: list[Event], drained_at_ns: int) -> list[Event]:
        """Add a drained batch; return the events that are now certainly in order."""
        pending = self._pending
        pending.extend(events)
        if not pending:
            return []
        pending.sort(key=_ts)  # nearly sorted input: Timsort is close to linear
        cut = bisect_left(pending, drained_at_ns - self.margin_ns, key=_ts)
        ready = pending[:cut]
        del pending[:cut]
        return ready

    @property
    def pending(self) -> Sequence[Event]:
        """The events held back, in timestamp order once push has returned:
        what is known to come after the released ones (the lookahead of
        tracer/model/path_search.py). A view, not a copy: read it, never change it."""
        return self._pending

    def flush(self) -> list[Event]:
        pending = sorted(self._pending, key=_ts)
        self._pending.clear()
        return pending

    def __len__(self) -> int:
        return len(self._pending)
