"""A live session: drain the kernel's events on a short timer and hand them on.

Batching is the main lever on overhead: waking Python for every event cost
~15 us/event and slowed a fork storm by ~20%; draining every 20 ms costs a few
us/event. Under load the timer stretches to 50 ms: at the storm's ~10k
events/s that cut the CPU per event by another ~15% (fewer wake-ups, each
finding its caches cold after the storm ran), and a line 50 ms late is
invisible in a stream scrolling that fast. Events are released in timestamp
order (tracer/model/ordering.py).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from proctrace.kernel.probe import Probe
from proctrace.model.ordering import Reorderer
from proctrace.session.sinks import Sink

DRAIN_INTERVAL_S = 0.02
BUSY_DRAIN_INTERVAL_S = 0.05
BUSY_BATCH = 64  # events in one drain (~3k events/s) from which the next drain waits longer
# The longer wait needs room: at a storm's ~4 MB/s of events, 50 ms is ~200 KB.
# A buffer chosen smaller than this keeps the short interval.
BUSY_MIN_BUFFER = 1 << 20
STATUS_INTERVAL_S = 0.5


@dataclass
class Totals:
    events: int = 0
    lost: int = 0
    undecodable: int = 0


def count_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP; the loop ends cleanly at its next turn."""

    def __init__(self) -> None:
        self.signo: int | None = None
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, self._set)

    def _set(self, signo: int, _frame: object) -> None:
        self.signo = signo

    def __bool__(self) -> bool:
        return self.signo is not None


def status_text(events_per_s: float, live_processes: int, lost: int) -> str:
    """The terminal's status line: "1,234 events/s · 56 live processes · 0 lost"."""
    return f"{events_per_s:,.0f} events/s · {live_processes} live processes · {lost} lost"


def drain_interval(last_batch: int, buffer_bytes: int) -> float:
    """How long to wait before the next drain, given how many events the last one brought."""
    if last_batch >= BUSY_BATCH and buffer_bytes >= BUSY_MIN_BUFFER:
        return BUSY_DRAIN_INTERVAL_S
    return DRAIN_INTERVAL_S


def run_live(
    probe: Probe,
    sink: Sink,
    stop: StopFlag,
    done: Callable[[], bool] = lambda: False,
    output_closed: Callable[[], bool] = lambda: False,
) -> Totals:
    """Trace until `stop` is set or `done()` says the traced command has ended.

    After `done()` turns true, one more drain collects what was already in the
    buffer: the BPF programs submit synchronously, so every event of the
    finished command is there by then.
    """
    totals = Totals()
    reorder = Reorderer()
    last_status = time.monotonic()
    window_events = 0
    buffer_bytes = probe.buffer_bytes
    interval = DRAIN_INTERVAL_S
    finishing = False
    while True:
        if not finishing and (stop or done()):
            finishing = True
        else:
            time.sleep(interval)
        drained_at = time.monotonic_ns()
        decoded, errors = probe.drain()
        interval = drain_interval(len(decoded), buffer_bytes)
        for exc in errors:
            totals.undecodable += 1
            print(f"proctrace: skipped an undecodable event: {exc}", file=sys.stderr)
        events = reorder.push(decoded, drained_at)
        if finishing:
            events += reorder.flush()
        if events:
            totals.events += len(events)
            window_events += len(events)
            sink.write(events)
        now = time.monotonic()
        # Reading the per-CPU loss counter goes through bcc's map API: on the
        # status timer, not every drain, and always at the end.
        if finishing or now - last_status >= STATUS_INTERVAL_S:
            lost = probe.lost()
            if lost > totals.lost:
                sink.lost(time.monotonic_ns(), lost - totals.lost, lost)
                totals.lost = lost
        if now - last_status >= STATUS_INTERVAL_S:
            if output_closed():
                raise BrokenPipeError("the reader of the output went away")
            text = ""
            if sink.shows_status:
                # Counted in /proc on this timer rather than from the events,
                # which would cost every event and drift with any loss.
                text = status_text(window_events / (now - last_status), count_processes(), totals.lost)
            sink.status(text)
            last_status, window_events = now, 0
        if finishing:
            return totals
