"""The bench of the live view (proctrace.bench.top): its arithmetic and its reading
of the session's closing line, without running anything."""

from __future__ import annotations

import pytest
from proctrace.bench import BenchError
from proctrace.bench.top import closing_counts, report


def test_each_traced_rate_is_compared_with_the_untraced_runs_either_side_of_it():
    # u0 top0 u1 stream0 u2 top1 u3 stream1 u4
    figures = {
        "untraced": [100.0, 100.0, 100.0, 80.0, 80.0],
        "top": [90.0, 72.0],  # 10% slower than (100+100)/2, then 20% slower than (100+80)/2
        "stream": [95.0, 76.0],  # against (100+100)/2 and (80+80)/2: 5% both times
        "lost": [0, 3],
    }
    lines = report(figures)
    assert lines[0].endswith("+15.0%")  # median of 10% and 20%
    assert lines[1].endswith("+5.0%")
    assert lines[2] == "events lost by --top: 3 in 2 runs"


def test_the_closing_line_gives_events_and_losses():
    assert closing_counts("proctrace: tracing ...\nproctrace: 32150 events, 7 lost (7 lifecycle, 0 signal)\n") == (
        32150,
        7,
    )
    with pytest.raises(BenchError):
        closing_counts("Traceback (most recent call last):\n")
