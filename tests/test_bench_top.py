"""The bench of the live view (proctrace.bench.top): its arithmetic and its reading
of the session's closing line, without running anything."""

from __future__ import annotations

import pytest
from proctrace.bench import BenchError
from proctrace.bench.top import closing_counts, cpu_us_per_event, report


def test_each_traced_rate_is_compared_with_the_untraced_runs_either_side_of_it():
    # u0 top0 u1 stream0 u2 top1 u3 stream1 u4
    figures = {
        "untraced": [100.0, 100.0, 100.0, 80.0, 80.0],
        "top": [90.0, 72.0],  # 10% slower than (100+100)/2, then 20% slower than (100+80)/2
        "stream": [95.0, 76.0],  # against (100+100)/2 and (80+80)/2: 5% both times
        "lost": [0, 3],
        "top_cpu_us_per_event": [3.0, 5.0, None],
        "stream_cpu_us_per_event": [2.0, 2.5, 1.5],
    }
    lines = report(figures)
    assert lines[0].endswith("+15.0%")  # median of 10% and 20%
    assert lines[1].endswith("+5.0%")
    assert lines[2] == "CPU per event (median): --top 4.00 us, the stream 2.00 us"  # a run without a figure is left out
    assert lines[3] == "events lost by --top: 3 in 2 runs"


def test_a_tracers_cpu_over_the_storm_is_divided_by_its_events():
    assert cpu_us_per_event(10.0, 10.5, 250_000) == pytest.approx(2.0)
    assert cpu_us_per_event(None, 10.5, 250_000) is None  # the process was gone
    assert cpu_us_per_event(10.0, 10.5, 0) is None


def test_figures_of_a_run_made_before_cpu_was_measured_still_summarise():
    old = {"untraced": [100.0, 100.0, 100.0], "top": [90.0], "stream": [95.0], "lost": [0]}
    assert "n/a" in report(old)[2]


def test_the_closing_line_gives_events_and_losses():
    assert closing_counts("proctrace: tracing ...\nproctrace: 32150 events, 7 lost (7 lifecycle, 0 signal)\n") == (
        32150,
        7,
    )
    with pytest.raises(BenchError):
        closing_counts("Traceback (most recent call last):\n")
