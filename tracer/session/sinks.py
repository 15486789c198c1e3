"""Sinks: where decoded events go. Live tracing and replay share them."""

from __future__ import annotations

import select
from typing import Protocol, TextIO

from proctrace.formats.jsonl import event_json, lost_json
from proctrace.model.clock import Clock
from proctrace.model.events import LIFECYCLE, Event


def reader_gone(stream: TextIO) -> bool:
    """True when `stream` is a pipe whose reader has closed it. Checked on a
    timer, so `proctrace | head -1` ends even when no further event comes."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(revents & (select.POLLERR | select.POLLHUP) for _, revents in poller.poll(0))


class Sink(Protocol):
    # True when status() text is shown (the status line of a terminal): the
    # live loop only composes the text for such a sink.
    shows_status: bool

    def write(self, events: list[Event]) -> None: ...
    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None: ...
    def status(self, text: str) -> None: ...
    def close(self) -> None: ...


class JsonSink:
    """One JSON object per line; losses are objects of type "lost" in the stream."""

    shows_status = False

    def __init__(self, stream: TextIO, clock: Clock) -> None:
        self._stream = stream
        self._clock = clock

    def write(self, events: list[Event]) -> None:
        clock = self._clock
        self._stream.write("".join([event_json(ev, clock) + "\n" for ev in events]))
        self._stream.flush()

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self._stream.write(lost_json(ts_ns, new, total, self._clock, event_class))
        self._stream.flush()

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        self._stream.flush()


class PrettySink:
    """Coloured lines for people, with a status line kept at the bottom of a terminal."""

    def __init__(self, stream: TextIO, clock: Clock, color: bool, tty: bool) -> None:
        # Imported here: JSON output should not pay for loading rich.
        from proctrace.formats.stream import StreamRenderer, Terminal

        self._renderer = StreamRenderer(clock, color=color)
        self._term = Terminal(stream, tty=tty)
        self.shows_status = tty
        self._term.write_lines([self._renderer.header()])

    def write(self, events: list[Event]) -> None:
        term = self._term
        if term.binary is not None:
            term.write_text(self._renderer.text(events, term.errors))
        else:
            term.write_lines(self._renderer.lines(events))

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        from proctrace.formats.words import lost_words

        self._term.write_lines([f"*** {lost_words(new, total, event_class)}"])

    def status(self, text: str) -> None:
        self._term.set_status(text)

    def close(self) -> None:
        self._term.close()
