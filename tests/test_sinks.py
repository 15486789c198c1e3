"""tracer/session/sinks.py: JSON lines and the pretty stream, written to a fake
stream; and the check that the reader of a pipe went away."""

from __future__ import annotations

import io
import os

from proctrace.formats.jsonl import event_json, lost_json
from proctrace.formats.stream import StreamRenderer
from proctrace.model.clock import Clock
from proctrace.model.events import Event
from proctrace.session.sinks import JsonSink, PrettySink, reader_gone

from tests.synthetic import MS, SHELL_START, execve, exit_, exited, fork, reap

SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)
CLEAR_LINE = "\r\x1b[K"

EVENTS: list[Event] = [
    fork(10 * MS, 200),
    execve(11 * MS, 200, 10 * MS, [b"make", b"-j2"]),
    exit_(12 * MS, 200, 10 * MS, exited(2), comm=b"make"),
    reap(13 * MS, 200, exited(2)),
]


class FakeStream(io.StringIO):
    """A text stream that counts its flushes and says whether it is a terminal."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty
        self.flushes = 0

    def isatty(self) -> bool:
        return self.tty

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


# --- JsonSink -------------------------------------------------------------------------


def test_json_sink_writes_one_line_per_event_as_the_json_encoder_gives_it() -> None:
    stream = FakeStream()
    sink = JsonSink(stream, CLOCK)
    sink.write(EVENTS[:2])
    sink.write(EVENTS[2:])
    assert stream.getvalue().splitlines() == [event_json(ev, CLOCK) for ev in EVENTS]
    assert stream.getvalue().endswith("\n")


def test_json_sink_flushes_every_batch_so_a_pipe_reader_sees_it_at_once() -> None:
    stream = FakeStream()
    sink = JsonSink(stream, CLOCK)
    sink.write(EVENTS[:1])
    assert stream.flushes == 1
    sink.lost(SHELL_START, 1, 1)
    assert stream.flushes == 2


def test_json_sink_reports_losses_as_lost_records_in_the_stream() -> None:
    stream = FakeStream()
    sink = JsonSink(stream, CLOCK)
    sink.write(EVENTS[:1])
    sink.lost(11 * MS, 3, 7)
    assert stream.getvalue() == event_json(EVENTS[0], CLOCK) + "\n" + lost_json(11 * MS, 3, 7, CLOCK)


def test_json_sink_shows_no_status() -> None:
    stream = FakeStream(tty=True)
    sink = JsonSink(stream, CLOCK)
    sink.status("12 events/s")
    sink.close()
    assert not sink.shows_status
    assert stream.getvalue() == ""


# --- PrettySink -----------------------------------------------------------------------


def expected_lines(events: list[Event]) -> list[str]:
    renderer = StreamRenderer(CLOCK, color=False)
    return [renderer.header(), *renderer.lines(events)]


def test_pretty_sink_writes_the_header_then_a_line_per_event() -> None:
    stream = FakeStream()
    sink = PrettySink(stream, CLOCK, color=False, tty=False)
    sink.write(EVENTS[:2])
    sink.write(EVENTS[2:])
    sink.close()
    assert stream.getvalue().splitlines() == expected_lines(EVENTS)


def test_pretty_sink_to_a_utf8_file_writes_what_it_writes_to_a_text_stream(tmp_path) -> None:
    """A file in UTF-8 takes each batch as bytes (StreamRenderer.text), in
    order with the header and the lost lines written as text."""
    text = FakeStream()
    with open(tmp_path / "out", "w", encoding="utf-8", errors="surrogateescape") as stream:
        sinks = [PrettySink(stream, CLOCK, color=True, tty=False), PrettySink(text, CLOCK, color=True, tty=False)]
        assert sinks[0]._term.binary is not None and sinks[1]._term.binary is None
        for sink in sinks:
            sink.write(EVENTS[:2])
            sink.lost(11 * MS, 3, 7)
            sink.write(EVENTS[2:])
            sink.close()
    assert (tmp_path / "out").read_text(encoding="utf-8") == text.getvalue()
    assert len(text.getvalue().splitlines()) == 6


def test_pretty_sink_says_how_many_events_were_lost_and_what_to_do() -> None:
    stream = FakeStream()
    sink = PrettySink(stream, CLOCK, color=False, tty=False)
    sink.lost(11 * MS, 3, 7)
    sink.lost(12 * MS, 40, 40, "signal")
    assert stream.getvalue().splitlines()[-2:] == [
        "*** 3 lifecycle events lost (kernel buffer full; 7 in all): try a larger --buffer-size",
        "*** 40 signal events lost (kernel buffer full; 40 in all): try a larger --signal-buffer-size",
    ]


def test_pretty_sink_off_a_terminal_shows_no_status_line() -> None:
    stream = FakeStream(tty=False)
    sink = PrettySink(stream, CLOCK, color=False, tty=False)
    sink.status("12 events/s")
    sink.write(EVENTS)
    sink.close()
    assert not sink.shows_status
    assert "12 events/s" not in stream.getvalue()
    assert CLEAR_LINE not in stream.getvalue()


def test_pretty_sink_on_a_terminal_keeps_the_status_line_below_the_events_and_clears_it_at_the_end() -> None:
    stream = FakeStream(tty=True)
    sink = PrettySink(stream, CLOCK, color=False, tty=True)
    assert sink.shows_status
    sink.status("12 events/s")
    sink.write(EVENTS[:1])
    sink.close()
    header, event_line = expected_lines(EVENTS[:1])
    assert stream.getvalue() == (
        f"{header}\n"
        f"{CLEAR_LINE}12 events/s"  # the status drawn
        f"{CLEAR_LINE}{event_line}\n12 events/s"  # cleared, the event written, drawn again
        f"{CLEAR_LINE}"  # cleared at the end
    )


def test_pretty_sink_colours_only_when_asked() -> None:
    plain, coloured = FakeStream(), FakeStream()
    PrettySink(plain, CLOCK, color=False, tty=False).write(EVENTS)
    PrettySink(coloured, CLOCK, color=True, tty=False).write(EVENTS)
    assert "\x1b[" not in plain.getvalue()
    assert "\x1b[" in coloured.getvalue()


# --- reader_gone ----------------------------------------------------------------------


def test_a_pipe_whose_reader_closed_it_is_seen_as_gone() -> None:
    read_end, write_end = os.pipe()
    with open(write_end, "w") as stream:
        assert not reader_gone(stream)
        os.close(read_end)
        assert reader_gone(stream)


def test_a_stream_without_a_file_descriptor_is_never_gone() -> None:
    assert not reader_gone(FakeStream())
