"""The one loop of a session: it drives a source of events, live or a recording,
into the sinks. The sources differ only in what they yield and when."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from proctrace.model.events import Event, LostRecord
from proctrace.session.sinks import Sink


@dataclass(frozen=True, slots=True)
class Tick:
    """A moment to check that the reader of the output is still there and, when
    `status` is not None, to hand the sinks the status text (empty when no sink
    shows it: a recording still takes the tick to flush)."""

    status: str | None


# What a source yields: a batch of events in timestamp order, a report of lost
# events, or a tick.
SourceRecord = list[Event] | LostRecord | Tick


class Source(Protocol):
    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        """Everything the session is to write, in order, until the source ends.
        `shows_status`: whether a sink shows the status text, so that the
        source composes it only then."""
        ...


@dataclass(frozen=True)
class SessionResult:
    """What a session hands back to the command line."""

    exit_code: int
    # True once a child process has taken over detaching the probes: the
    # tracer then ends with os._exit(), skipping the interpreter's cleanup,
    # which has nothing left to do.
    leave_without_cleanup: bool = False


# The cyclic collector's thresholds while events flow (Python's defaults: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 100)


def quiet_collector() -> None:
    """Events hold no reference cycles: reference counting frees each batch
    once the sinks are done with it. What lives on (the process table, the
    caches, everything made at start) the collector would only scan again and
    again, which cost a third of the decoding time of a storm. So what exists
    now is frozen out of its reach, and it runs less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def drive(source: Source, sink: Sink, reader_gone: Callable[[], bool]) -> None:
    """Feed everything `source` yields into `sink`; raise BrokenPipeError at a
    tick that finds the reader of the output gone."""
    quiet_collector()
    for record in source.records(sink.shows_status):
        if type(record) is list:
            sink.write(record)
        elif type(record) is LostRecord:
            sink.lost(record.ts_ns, record.count, record.total, record.event_class)
        else:
            if reader_gone():
                raise BrokenPipeError("the reader of the output went away")
            if record.status is not None:
                sink.status(record.status)
