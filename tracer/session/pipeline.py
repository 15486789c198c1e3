"""Source -> filter -> sinks. Live tracing and replay differ only in the source."""

from __future__ import annotations

from proctrace.model.events import EVENT_CLASSES, LIFECYCLE, Event
from proctrace.model.filters import EventFilter, FilterSpec
from proctrace.session.sinks import Sink


class Pipeline:
    """A Sink that filters each batch once and hands it to every sink."""

    def __init__(self, event_filter: EventFilter, sinks: list[Sink]) -> None:
        self.filter = event_filter
        self._everything = event_filter.spec == FilterSpec()  # no filter: skip it per event
        self.sinks = sinks
        self.shows_status = any(sink.shows_status for sink in sinks)
        self.shown = 0
        self.lost_by_class = dict.fromkeys(EVENT_CLASSES, 0)

    def write(self, events: list[Event]) -> None:
        shown = events if self._everything else self.filter(events)
        if shown:
            self.shown += len(shown)
            for sink in self.sinks:
                sink.write(shown)

    @property
    def lost_total(self) -> int:
        return sum(self.lost_by_class.values())

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self.lost_by_class[event_class] = total
        for sink in self.sinks:
            sink.lost(ts_ns, new, total, event_class)

    def status(self, text: str) -> None:
        for sink in self.sinks:
            sink.status(text)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
