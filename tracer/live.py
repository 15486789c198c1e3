"""A live session: drain the kernel's events on a short timer and hand them on.

Batching is the main lever on overhead: waking Python for every event cost
~15 us/event and slowed a fork storm by ~20%; draining every 20 ms costs a few
us/event. Events are released in timestamp order (tracer/ordering.py).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tracer.events import Event, ExitEvent, ForkEvent
from tracer.ordering import Reorderer
from tracer.output import Sink
from tracer.probe import Probe
from tracer.wire import DecodeError, decode

DRAIN_INTERVAL_S = 0.02
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


def run_live(
    probe: Probe,
    sink: Sink,
    stop: StopFlag,
    done: Callable[[], bool] = lambda: False,
    output_closed: Callable[[], bool] = lambda: False,
    live_processes: int | None = None,
) -> Totals:
    """Trace until `stop` is set or `done()` says the traced command has ended.

    After `done()` turns true, one more drain collects what was already in the
    buffer: the BPF programs submit synchronously, so every event of the
    finished command is there by then.
    """
    totals = Totals()
    live = count_processes() if live_processes is None else live_processes
    reorder = Reorderer()
    last_status = time.monotonic()
    window_events = 0
    finishing = False
    while True:
        if not finishing and (stop or done()):
            finishing = True
        else:
            time.sleep(DRAIN_INTERVAL_S)
        drained_at = time.monotonic_ns()
        decoded: list[Event] = []
        for buf in probe.drain():
            try:
                decoded.append(decode(buf))
            except DecodeError as exc:
                totals.undecodable += 1
                print(f"proctrace: skipped an undecodable event: {exc}", file=sys.stderr)
        events = reorder.push(decoded, drained_at)
        if finishing:
            events += reorder.flush()
        if events:
            for ev in events:
                kind = type(ev)
                if kind is ForkEvent:
                    live += not ev.thread
                elif kind is ExitEvent:
                    live -= ev.process_exit
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
            rate = window_events / (now - last_status)
            sink.status(f"{rate:,.0f} events/s · {max(live, 0)} live processes · {totals.lost} lost")
            last_status, window_events = now, 0
        if finishing:
            return totals
