"""tracer/session/live.py: the drain timer (short when idle, longer under load when the
buffer has room) and the status line's text."""

from __future__ import annotations

from proctrace.session.live import (
    BUSY_BATCH,
    BUSY_DRAIN_INTERVAL_S,
    BUSY_MIN_BUFFER,
    DRAIN_INTERVAL_S,
    drain_interval,
    status_text,
)

DEFAULT_RING = 4 << 20


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
