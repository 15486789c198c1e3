"""Sinks: where decoded events go. Live tracing and replay share them."""

from __future__ import annotations

import select
from typing import Protocol, TextIO

from tracer.clock import Clock
from tracer.events import Event
from tracer.jsonout import dumps_line, event_json


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
    def lost(self, ts_ns: int, new: int, total: int) -> None: ...
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

    def lost(self, ts_ns: int, new: int, total: int) -> None:
        record = {"type": "lost", "ts_ns": ts_ns, "time": self._clock.iso(ts_ns), "count": new, "total": total}
        self._stream.write(dumps_line(record))
        self._stream.flush()

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        self._stream.flush()


class PrettySink:
    """Coloured lines for people, with a status line kept at the bottom of a terminal."""

    def __init__(self, stream: TextIO, clock: Clock, color: bool, tty: bool) -> None:
        # Imported here: JSON output should not pay for loading rich.
        from tracer.render import StreamRenderer, TerminalSink

        self._renderer = StreamRenderer(clock, color=color)
        self._term = TerminalSink(stream, tty=tty)
        self.shows_status = tty
        self._term.write_lines([self._renderer.header()])

    def write(self, events: list[Event]) -> None:
        self._term.write_lines(self._renderer.lines(events))

    def lost(self, ts_ns: int, new: int, total: int) -> None:
        self._term.write_lines(
            [f"*** {new} events lost (kernel buffer full; {total} in all): try a larger --buffer-size"]
        )

    def status(self, text: str) -> None:
        self._term.set_status(text)

    def close(self) -> None:
        self._term.close()
