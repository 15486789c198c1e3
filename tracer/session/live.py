"""A live session: drain the kernel's events on a short timer and hand them on.

Batching is the main lever on overhead: waking Python for every event cost
~15 us/event and slowed a fork storm by ~20%; draining every 20 ms costs a few
us/event. Under load the timer stretches to 100 ms: each wake-up finds its
caches cold after the storm ran, so fewer and larger batches cost less per
event. At the storm's ~13k events/s, 50 ms cut the CPU per event by ~15%
against 20 ms, and 100 ms by another ~20% against 50 (2.60 -> 2.01 us, five
runs each; 200 ms gave 1.97, no further gain). A line 100 ms late is
invisible in a stream scrolling that fast. Events are released in timestamp
order (tracer/model/ordering.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proctrace.formats.recording import make_header
from proctrace.formats.report import SessionInfo, traced_words
from proctrace.formats.text import safe
from proctrace.kernel.kmsg import KernelLog, OomMemcgStep
from proctrace.kernel.probe import Probe
from proctrace.model.clock import Clock
from proctrace.model.events import EVENT_CLASSES, LostRecord
from proctrace.model.filters import FilterSpec
from proctrace.model.ordering import Reorderer
from proctrace.model.path_search import mark_path_searches
from proctrace.session.attach import StopFlag, attach
from proctrace.session.cgroups import SteppedSource, add_to_header, live_step
from proctrace.session.command import HeldCommand
from proctrace.session.exports import SessionExports, gauge_seed
from proctrace.session.loop import SessionResult, SourceRecord, Tick, drive
from proctrace.session.options import SessionOptions, TransportOptions
from proctrace.session.outputs import SessionOutputs, refuse_existing_outputs
from proctrace.session.rotation import RotatingRecorder

DRAIN_INTERVAL_S = 0.02
BUSY_DRAIN_INTERVAL_S = 0.1
BUSY_BATCH = 64  # events in one drain (~3k events/s) from which the next drain waits longer
# The longer wait needs room: at a storm's ~4 MB/s of events, 100 ms is ~400 KB.
# A buffer chosen smaller than this keeps the short interval.
BUSY_MIN_BUFFER = 2 << 20
STATUS_INTERVAL_S = 0.5
# How often the counts of signals folded in the kernel are read and reported.
FOLD_INTERVAL_S = 1.0


@dataclass
class Totals:
    events: int = 0
    lost_by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_CLASSES, 0))
    undecodable: int = 0

    @property
    def lost(self) -> int:
        return sum(self.lost_by_class.values())


def count_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def status_text(events_per_s: float, live_processes: int, lost: int) -> str:
    """The terminal's status line: "1,234 events/s · 56 live processes · 0 lost"."""
    return f"{events_per_s:,.0f} events/s · {live_processes} live processes · {lost} lost"


def drain_interval(last_batch: int, buffer_bytes: int) -> float:
    """How long to wait before the next drain, given how many events the last one brought."""
    if last_batch >= BUSY_BATCH and buffer_bytes >= BUSY_MIN_BUFFER:
        return BUSY_DRAIN_INTERVAL_S
    return DRAIN_INTERVAL_S


class LiveSource:
    """The probes' events, drained on the timer and put in order, until `stop`
    is set or the traced command has ended; `totals` counts them as they go."""

    def __init__(self, probe: Probe, stop: StopFlag, command: HeldCommand | None) -> None:
        self.probe = probe
        self.stop = stop
        self.command = command
        self.totals = Totals()

    def _command_ended(self) -> bool:
        # Ctrl-C reaches the command through the terminal; we trace until it exits.
        return self.command is not None and self.command.poll() is not None

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        """After the command ends (or a stop), one more drain collects what was
        already in the buffer: the BPF programs submit synchronously, so every
        event of the finished command is there by then."""
        probe, stop, totals = self.probe, self.stop, self.totals
        reorder = Reorderer()
        last_status = last_fold = time.monotonic()
        window_events = 0
        buffer_bytes = probe.buffer_bytes
        interval = DRAIN_INTERVAL_S
        finishing = False
        while True:
            if not finishing and (stop or self._command_ended()):
                finishing = True
            else:
                time.sleep(interval)
            drained_at = time.monotonic_ns()
            decoded, errors = probe.drain()
            interval = drain_interval(len(decoded), buffer_bytes)
            if finishing or time.monotonic() - last_fold >= FOLD_INTERVAL_S:
                # Stamped when read, so they join the stream after the signals they count.
                decoded += probe.folded(final=finishing)
                last_fold = time.monotonic()
            for exc in errors:
                totals.undecodable += 1
                print(f"proctrace: skipped an undecodable event: {exc}", file=sys.stderr)
            events = reorder.push(decoded, drained_at)
            if finishing:
                events += reorder.flush()
            if events:
                # Decided here, before any sink, so every output and the recording
                # agree; the events still in the window are the lookahead.
                mark_path_searches(events, reorder.pending)
                totals.events += len(events)
                window_events += len(events)
                yield events
            now = time.monotonic()
            # The per-CPU loss counters are a bpf(2) lookup each: on the status
            # timer, not every drain, and always at the end.
            if finishing or now - last_status >= STATUS_INTERVAL_S:
                for event_class, lost in probe.lost().items():
                    before = totals.lost_by_class[event_class]
                    if lost > before:
                        yield LostRecord(time.monotonic_ns(), lost - before, lost, event_class)
                        totals.lost_by_class[event_class] = lost
            if now - last_status >= STATUS_INTERVAL_S:
                text = ""
                if shows_status:
                    # Counted in /proc on this timer rather than from the events,
                    # which would cost every event and drift with any loss.
                    text = status_text(window_events / (now - last_status), count_processes(), totals.lost)
                yield Tick(text)
                last_status, window_events = now, 0
            if finishing:
                return

    def end_reason(self) -> str:
        """Why the session ended, as the recording's trailer says it."""
        if self.stop.quit:
            return "quit from the live view"
        if self.stop.signo is not None:
            return f"stopped by {signal.Signals(self.stop.signo).name}"
        if self.command is not None:
            return "the command ended"
        return "ended"


def options_record(
    transport: TransportOptions, spec: FilterSpec, command_pid: int | None, redaction: dict[str, Any]
) -> dict[str, Any]:
    """The options in effect, as the recording's header keeps them; `redaction`
    is Redactor.describe() of the session's."""
    return {
        "filters": spec.as_dict(),
        "argv_max": transport.argv_max,
        "buffer_size": transport.buffer_size,
        "signal_buffer_size": transport.signal_buffer_size,
        "signal_rate": transport.signal_rate,
        "all_signals": transport.all_signals,
        "env": transport.env,
        "command_pid": command_pid,
        "redaction": redaction,
    }


def exit_code(wait_status: int) -> int:
    """The command's exit status, or 128+N when signal N killed it, as a shell reports it."""
    if os.WIFEXITED(wait_status):
        return os.waitstatus_to_exitcode(wait_status)
    return 128 + os.WTERMSIG(wait_status)


def live_info(options: SessionOptions, clock: Clock, started_ns: int) -> SessionInfo:
    """What the report says of a live session on this machine."""
    uname = os.uname()
    command = None if options.command is None else [os.fsencode(a) for a in options.command]
    return SessionInfo(uname.nodename, uname.release, traced_words(command), "live", clock.iso(started_ns))


def trace_live(options: SessionOptions) -> SessionResult:
    """Trace until stopped by a signal or, with a command, until it ends."""
    refuse_existing_outputs(options.outputs)
    # Exports first: a port in use or a missing package fails before attaching.
    with SessionExports(options.exports) as exports, attach(options) as kernel:
        held = kernel.held
        clock = Clock()
        started_ns = time.monotonic_ns()
        header = None
        if options.outputs.record_path:
            pid = held.pid if held else None
            record = options_record(options.transport, options.filters, pid, kernel.redactor.describe())
            header = make_header(clock, "ring" if kernel.ring else "perf", record, kernel.snapshot)
            add_to_header(header, kernel.cgroups)
        outputs = SessionOutputs(
            options.outputs, kernel.event_filter, clock, kernel.snapshot, header, kernel.redactor, kernel.cgroups,
            exports.sinks(clock, gauge_seed(kernel.snapshot, options.filters, held is not None)),
        )  # fmt: skip
        if isinstance(outputs.writer, RotatingRecorder):
            outputs.writer.rotate_on(signal.SIGUSR1)  # acted on between batches, not in the handler
        what = f"{safe(options.command[0])} and its descendants" if options.command else "every process"
        transport = "ring buffer" if kernel.ring else "perf buffer"
        print(f"proctrace: tracing {what} ({transport}); Ctrl-C to stop", file=sys.stderr, flush=True)
        source = LiveSource(kernel.probe, kernel.stop, held)
        kernel_log = KernelLog()  # opened now: it reads what is logged from here on
        try:
            kernel.release_command()
            step = OomMemcgStep(live_step(kernel.cgroups, kernel.probe, options.filters), kernel_log)
            with outputs.top.shown(kernel.stop.request) if outputs.top else contextlib.nullcontext():
                drive(SteppedSource(source, step), outputs.pipeline, outputs.reader_gone)
        except BaseException:
            with contextlib.suppress(Exception):
                outputs.close("failed")
            raise
        finally:
            kernel_log.close()
        outputs.close(source.end_reason())
        outputs.finish(held.pid if held else None, live_info(options, clock, started_ns))
    totals = source.totals
    skipped = f", {totals.undecodable} undecodable" if totals.undecodable else ""
    by_class = ""
    if totals.lost:
        by_class = " (" + ", ".join(f"{n} {cls}" for cls, n in totals.lost_by_class.items()) + ")"
    print(f"proctrace: {totals.events} events, {totals.lost} lost{by_class}{skipped}", file=sys.stderr)
    if held is not None and held.status is not None:
        return SessionResult(exit_code(held.status), leave_without_cleanup=True)
    return SessionResult(0, leave_without_cleanup=True)
