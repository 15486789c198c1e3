"""The one loop of a session (tracer/session/loop.py) and the live source it
drives (tracer/session/live.py): the drain timer, short when idle and longer
under load when the buffer has room; the final drain; the loss counter and the
status line on their timer; the reader of the output going away.

No BPF here: the live source drains a fake probe on a fake clock."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from proctrace.model.events import LIFECYCLE, SIGNALS, Event, LostRecord, SignalSummaryEvent
from proctrace.session import live
from proctrace.session.attach import StopFlag
from proctrace.session.live import (
    BUSY_BATCH,
    BUSY_DRAIN_INTERVAL_S,
    BUSY_MIN_BUFFER,
    DRAIN_INTERVAL_S,
    FOLD_INTERVAL_S,
    STATUS_INTERVAL_S,
    LiveSource,
    drain_interval,
    status_text,
)
from proctrace.session.loop import SourceRecord, Tick, drive

from tests.synthetic import MS, SHELL_START, execve, exit_, fork

DEFAULT_RING = 4 << 20

# --- the drain timer ------------------------------------------------------------------


def test_a_quiet_machine_is_drained_on_the_short_interval_so_events_show_at_once() -> None:
    assert drain_interval(0, DEFAULT_RING) == DRAIN_INTERVAL_S
    assert drain_interval(BUSY_BATCH - 1, DEFAULT_RING) == DRAIN_INTERVAL_S


def test_a_storm_stretches_the_interval_to_batch_more_events_per_wake_up() -> None:
    assert drain_interval(BUSY_BATCH, DEFAULT_RING) == BUSY_DRAIN_INTERVAL_S
    assert drain_interval(100_000, DEFAULT_RING) == BUSY_DRAIN_INTERVAL_S
    assert BUSY_DRAIN_INTERVAL_S > DRAIN_INTERVAL_S


def test_a_small_buffer_keeps_the_short_interval_even_in_a_storm() -> None:
    """Waiting longer would fill a small buffer and lose events."""
    assert drain_interval(100_000, BUSY_MIN_BUFFER - 1) == DRAIN_INTERVAL_S
    assert drain_interval(100_000, 8 << 10) == DRAIN_INTERVAL_S


def test_the_load_falling_brings_the_short_interval_back() -> None:
    busy = drain_interval(5_000, DEFAULT_RING)
    quiet = drain_interval(3, DEFAULT_RING)
    assert (busy, quiet) == (BUSY_DRAIN_INTERVAL_S, DRAIN_INTERVAL_S)


def test_the_busy_interval_fits_a_storm_in_the_smallest_buffer_it_is_used_with() -> None:
    """At 20k events/s of ~200 bytes (twice the bench storm), one busy interval
    must fill under a quarter of the smallest buffer that gets it."""
    assert 20_000 * 200 * BUSY_DRAIN_INTERVAL_S < BUSY_MIN_BUFFER / 4


def test_the_status_line_reads_rate_live_processes_and_losses() -> None:
    assert status_text(1234.4, 56, 0) == "1,234 events/s · 56 live processes · 0 lost"


# --- the loop -------------------------------------------------------------------------


class RecordingSink:
    """A sink that notes every call, in order."""

    def __init__(self, shows_status: bool = False) -> None:
        self.shows_status = shows_status
        self.calls: list[tuple[str, object]] = []

    def write(self, events: list[Event]) -> None:
        self.calls.append(("write", events))

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self.calls.append(("lost", (ts_ns, new, total, event_class)))

    def status(self, text: str) -> None:
        self.calls.append(("status", text))

    def close(self) -> None:
        self.calls.append(("close", None))


class ScriptedSource:
    """Yields a fixed list of records, and notes what it was asked."""

    def __init__(self, records: list[SourceRecord]) -> None:
        self.script = records
        self.asked_shows_status: bool | None = None
        self.yielded = 0

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        self.asked_shows_status = shows_status
        for record in self.script:
            self.yielded += 1
            yield record


BATCH = [fork(10 * MS, 200), exit_(11 * MS, 200, 10 * MS)]


def test_the_loop_hands_batches_lost_reports_and_status_to_the_sink_in_order() -> None:
    lost_signals = LostRecord(12 * MS, 7, 7, SIGNALS)
    source = ScriptedSource([BATCH, LostRecord(12 * MS, 3, 5), lost_signals, Tick("1 events/s"), Tick(""), BATCH])
    sink = RecordingSink(shows_status=True)
    drive(source, sink, reader_gone=lambda: False)
    assert source.asked_shows_status is True
    assert sink.calls == [
        ("write", BATCH),
        ("lost", (12 * MS, 3, 5, LIFECYCLE)),
        ("lost", (12 * MS, 7, 7, SIGNALS)),
        ("status", "1 events/s"),
        ("status", ""),
        ("write", BATCH),
    ]


def test_a_tick_without_status_checks_the_reader_but_sets_no_status() -> None:
    checks = []

    def reader_gone() -> bool:
        checks.append(True)
        return False

    sink = RecordingSink()
    drive(ScriptedSource([BATCH, Tick(None), BATCH, Tick(None)]), sink, reader_gone)
    assert len(checks) == 2
    assert [name for name, _ in sink.calls] == ["write", "write"]


def test_the_reader_is_checked_at_ticks_only_and_its_absence_ends_the_loop() -> None:
    checks = []

    def reader_gone() -> bool:
        checks.append(True)
        return True

    source = ScriptedSource([BATCH, LostRecord(1, 1, 1), Tick("status"), BATCH])
    sink = RecordingSink()
    with pytest.raises(BrokenPipeError):
        drive(source, sink, reader_gone)
    assert len(checks) == 1
    assert sink.calls == [("write", BATCH), ("lost", (1, 1, 1, LIFECYCLE))]  # no status, and nothing after the tick
    assert source.yielded == 3


# --- the live source ------------------------------------------------------------------

START_NS = 1_000 * MS  # the fake monotonic clock's reading when a test starts


class FakeTime:
    """Stands in for the time module in tracer/session/live.py: sleeping advances it."""

    def __init__(self) -> None:
        self.now_ns = START_NS
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_ns / 1e9

    def monotonic_ns(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += round(seconds * 1e9)


class FakeProbe:
    """Hands out scripted batches, one per drain, then nothing; a loss counter the test sets."""

    def __init__(self, batches: list[list[Event]] | None = None, buffer_bytes: int = DEFAULT_RING) -> None:
        self.batches = list(batches or [])
        self.errors: list[list[ValueError]] = []
        self.buffer_bytes = buffer_bytes
        self.lost_total = 0  # lifecycle events
        self.signals_lost = 0
        self.folds: list[list[SignalSummaryEvent]] = []  # handed out one list per read
        self.fold_reads: list[bool] = []  # `final` of each read
        self.drains = 0
        self.lost_reads = 0

    def drain(self) -> tuple[list[Event], list[ValueError]]:
        self.drains += 1
        events = self.batches.pop(0) if self.batches else []
        errors = self.errors.pop(0) if self.errors else []
        return events, errors

    def lost(self) -> dict[str, int]:
        self.lost_reads += 1
        return {LIFECYCLE: self.lost_total, SIGNALS: self.signals_lost}

    def folded(self, final: bool = False) -> list[SignalSummaryEvent]:
        self.fold_reads.append(final)
        return self.folds.pop(0) if self.folds else []


class FakeCommand:
    """A traced command that ends after `turns` polls."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.status: int | None = None

    def poll(self) -> int | None:
        if self.turns == 0:
            self.status = 0
        self.turns -= 1
        return self.status


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(live, "time", fake)
    monkeypatch.setattr(live, "count_processes", lambda: 42)
    return fake


def stopped(signo: int | None = signal.SIGTERM) -> StopFlag:
    stop = StopFlag()
    stop.signo = signo
    return stop


def source(probe: FakeProbe, stop: StopFlag | None = None, command: FakeCommand | None = None) -> LiveSource:
    return LiveSource(probe, stop or stopped(None), command)  # type: ignore[arg-type]


def test_a_stop_before_the_first_turn_still_drains_once_and_flushes_everything(clock: FakeTime) -> None:
    # Stamped after the first drain's watermark: an ordinary turn would hold it back.
    late = exit_(START_NS, 300, SHELL_START)
    probe = FakeProbe([[late]])
    probe.lost_total = 2
    src = source(probe, stopped())
    records = list(src.records(shows_status=False))
    assert probe.drains == 1 and clock.sleeps == []
    assert records == [[late], LostRecord(START_NS, 2, 2)]
    assert (src.totals.events, src.totals.lost) == (1, 2)
    assert src.end_reason() == "stopped by SIGTERM"


def test_events_wait_for_their_watermark_and_come_in_timestamp_order(clock: FakeTime) -> None:
    first_drain = START_NS + round(DRAIN_INTERVAL_S * 1e9)
    early, middle = fork(START_NS, 200), fork(START_NS + 1 * MS, 201)
    recent = fork(first_drain - 1 * MS, 202)  # within the submit margin of the drain
    probe = FakeProbe([[recent, middle, early], []])
    records = list(source(probe, command=FakeCommand(turns=2)).records(shows_status=False))
    assert records == [[early, middle], [recent]]


def test_after_the_command_ends_one_more_drain_collects_what_is_left(clock: FakeTime) -> None:
    last = exit_(START_NS + 5 * MS, 300, SHELL_START)
    probe = FakeProbe([[], [], [last]])
    src = source(probe, command=FakeCommand(turns=2))
    records = list(src.records(shows_status=False))
    assert probe.drains == 3
    assert records == [[last]]  # collected by the drain after the command ended
    assert len(clock.sleeps) == 2  # the final drain does not wait
    assert src.end_reason() == "the command ended"


def test_the_loss_counter_is_read_on_the_status_timer_and_at_the_end(clock: FakeTime) -> None:
    turns = round(STATUS_INTERVAL_S / DRAIN_INTERVAL_S) + 3  # one status tick, then the end
    probe = FakeProbe()
    src = source(probe, command=FakeCommand(turns=turns))
    reads_by_turn = []
    for record in src.records(shows_status=False):
        reads_by_turn.append((probe.drains, probe.lost_reads, record))
    ticks = [(drains, reads) for drains, reads, record in reads_by_turn if isinstance(record, Tick)]
    assert len(ticks) == 1
    drains_at_tick, reads_at_tick = ticks[0]
    assert drains_at_tick * DRAIN_INTERVAL_S >= STATUS_INTERVAL_S
    assert reads_at_tick == 1  # not on the drains before it
    assert probe.lost_reads == 2  # and once more at the end
    assert probe.drains == turns + 1


def test_new_losses_are_reported_as_the_increase_and_the_running_total(clock: FakeTime) -> None:
    probe = FakeProbe()
    turns = 2 * round(STATUS_INTERVAL_S / DRAIN_INTERVAL_S) + 2
    src = source(probe, command=FakeCommand(turns=turns))
    reports = []
    for record in src.records(shows_status=False):
        if isinstance(record, Tick):
            probe.lost_total += 4  # losses arrive between ticks
        if isinstance(record, LostRecord):
            reports.append((record.count, record.total))
    assert reports == [(4, 4), (4, 8)]
    assert src.totals.lost == 8


def test_status_text_is_composed_only_for_a_sink_that_shows_it(clock: FakeTime) -> None:
    turns = round(STATUS_INTERVAL_S / DRAIN_INTERVAL_S) + 1
    batch = [fork(START_NS, 200 + i) for i in range(5)]
    for shows_status in (False, True):
        clock.now_ns = START_NS
        probe = FakeProbe([batch])
        records = list(source(probe, command=FakeCommand(turns=turns)).records(shows_status))
        ticks = [record for record in records if isinstance(record, Tick)]
        assert len(ticks) == 1
        if shows_status:
            assert ticks[0].status is not None and ticks[0].status.endswith("· 42 live processes · 0 lost")
            assert ticks[0].status.startswith(f"{5 / STATUS_INTERVAL_S:,.0f} events/s")
        else:
            assert ticks[0] == Tick("")


def test_a_busy_drain_stretches_the_wait_before_the_next(clock: FakeTime) -> None:
    storm = [fork(START_NS, 1000 + i) for i in range(BUSY_BATCH)]
    probe = FakeProbe([storm, [], []])
    list(source(probe, command=FakeCommand(turns=3)).records(shows_status=False))
    assert clock.sleeps == [DRAIN_INTERVAL_S, BUSY_DRAIN_INTERVAL_S, DRAIN_INTERVAL_S]


def test_undecodable_records_are_counted_and_reported_on_stderr(
    clock: FakeTime, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = FakeProbe()
    probe.errors = [[ValueError("record of 3 bytes")]]
    src = source(probe, stopped())
    list(src.records(shows_status=False))
    assert src.totals.undecodable == 1
    assert "skipped an undecodable event: record of 3 bytes" in capsys.readouterr().err


def test_a_live_source_into_the_loop_stops_when_the_reader_is_gone(clock: FakeTime) -> None:
    probe = FakeProbe([[fork(START_NS, 200)]])
    src = source(probe, command=FakeCommand(turns=10_000))
    sink = RecordingSink()
    with pytest.raises(BrokenPipeError):
        drive(src, sink, reader_gone=lambda: True)
    # the first status tick found it, half a second in
    assert probe.drains == round(STATUS_INTERVAL_S / DRAIN_INTERVAL_S)
    assert [name for name, _ in sink.calls] == ["write"]


def test_a_session_that_ends_on_its_own_says_so() -> None:
    assert source(FakeProbe()).end_reason() == "ended"


def test_signal_losses_are_reported_apart_from_lifecycle_losses(clock: FakeTime) -> None:
    probe = FakeProbe()
    probe.lost_total, probe.signals_lost = 1, 40
    src = source(probe, stopped())
    losses = [r for r in src.records(shows_status=False) if isinstance(r, LostRecord)]
    assert [(r.event_class, r.count, r.total) for r in losses] == [(LIFECYCLE, 1, 1), (SIGNALS, 40, 40)]
    assert src.totals.lost_by_class == {LIFECYCLE: 1, SIGNALS: 40}
    assert src.totals.lost == 41


def folded_summary(ts_ns: int) -> SignalSummaryEvent:
    return SignalSummaryEvent(ts_ns, 300, 300, 1, 0, b"python3", SHELL_START, 0, signo=17, target_pid=200, count=9)


def test_folded_signals_are_read_every_second_and_at_the_end_and_join_the_ordered_stream(clock: FakeTime) -> None:
    turns = round(2.5 * FOLD_INTERVAL_S / DRAIN_INTERVAL_S)
    # Read at the first fold tick: stamped then, after the fork drained just before it.
    summary = folded_summary(START_NS + round(FOLD_INTERVAL_S * 1e9))
    first = fork(START_NS + round(FOLD_INTERVAL_S * 1e9) - 10 * MS, 200)
    probe = FakeProbe()
    probe.folds = [[summary]]
    probe.batches = [[] for _ in range(round(FOLD_INTERVAL_S / DRAIN_INTERVAL_S) - 1)] + [[first]]
    records = list(source(probe, command=FakeCommand(turns=turns)).records(shows_status=False))
    events = [ev for record in records if isinstance(record, list) for ev in record]
    assert events == [first, summary]
    assert probe.fold_reads == [False, False, True]  # two fold ticks, then the final read


def test_the_live_source_decides_path_searches_with_the_reorder_window_as_lookahead(clock: FakeTime) -> None:
    # cc's driver misses "as" in two directories and finds it in a third. The
    # first drain releases the misses while their success waits in the window.
    first_drain = START_NS + round(DRAIN_INTERVAL_S * 1e9)
    found_at = first_drain - 1 * MS  # within the submit margin of the first drain: held
    missed_at = found_at - 4 * MS - 500_000  # before the margin: released
    misses = [
        execve(missed_at, 500, SHELL_START, [b"as"], errno=2, filename=b"/usr/local/bin/as"),
        execve(missed_at + 10_000, 500, SHELL_START, [b"as"], errno=2, filename=b"/root/.cargo/bin/as"),
    ]
    lone = execve(START_NS, 501, SHELL_START, [b"frob"], errno=2, filename=b"/usr/bin/frob")
    success = execve(found_at, 500, SHELL_START, [b"as"], filename=b"/usr/bin/as")
    probe = FakeProbe([[lone, *misses, success], []])
    records = list(source(probe, command=FakeCommand(turns=2)).records(shows_status=False))
    assert records == [[lone, *misses], [success]]
    assert [ev.path_search for ev in (lone, *misses, success)] == [False, True, True, False]
