"""Source -> redaction -> filter -> sinks. Live tracing and replay differ only
in the source.

Redaction comes first, so that a secret never reaches the filter, a sink or
the process table the views are made from; the start snapshot goes through
the same Redactor (session_redactor) before anything reads it.
"""

from __future__ import annotations

from proctrace.model.events import EVENT_CLASSES, LIFECYCLE, Event
from proctrace.model.filters import EventFilter, FilterSpec
from proctrace.model.redact import Redactor
from proctrace.model.text import as_bytes
from proctrace.session.options import RedactionOptions
from proctrace.session.sinks import Sink


def session_redactor(options: RedactionOptions) -> Redactor:
    """The Redactor of a session's options. Raises RedactError for a bad pattern."""
    allow = None if options.env_allow is None else [as_bytes(name) for name in options.env_allow]
    return Redactor(options.enabled, options.patterns, allow)


class Pipeline:
    """A Sink that redacts and filters each batch once and hands it to every sink."""

    def __init__(self, event_filter: EventFilter, sinks: list[Sink], redactor: Redactor | None = None) -> None:
        # Without a redactor, the default rules: a pipeline never passes secrets
        # on because its maker forgot one. An inactive one (--no-redact, no
        # allow-list) costs nothing per batch.
        redactor = Redactor() if redactor is None else redactor
        self._redact = redactor.events if redactor.active else None
        self.filter = event_filter
        self._everything = event_filter.spec == FilterSpec()  # no filter: skip it per event
        self.sinks = sinks
        self.shows_status = any(sink.shows_status for sink in sinks)
        self.shown = 0
        self.lost_by_class = dict.fromkeys(EVENT_CLASSES, 0)

    def write(self, events: list[Event]) -> None:
        if self._redact is not None:
            events = self._redact(events)
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
