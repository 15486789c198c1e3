"""The bench of the compiled decoder and renderer (proctrace.bench.compiled): its
arithmetic and the environment it starts tracers in, without running anything."""

from __future__ import annotations

import os

from proctrace import PURE_PYTHON_ENV
from proctrace.bench import compiled


def test_each_mode_is_compared_with_the_untraced_runs_either_side_of_it():
    # u0 compiled0 u1 python0 u2 compiled1 u3 python1 u4
    figures = {
        "untraced": [100.0, 100.0, 100.0, 80.0, 80.0],
        "compiled": [99.0, 88.2],  # 1% slower than (100+100)/2, then 2% slower than (100+80)/2
        "python": [95.0, 76.0],  # 5% both times
        "compiled_cpu": [5.0, 7.0],
        "python_cpu": [12.0, 12.0],
        "lost": [0, 1, 0, 0],
    }
    s = compiled.summary(figures)
    assert round(s["compiled_slowdown_pct"], 6) == 1.5  # median of 1% and 2%
    assert round(s["python_slowdown_pct"], 6) == 5.0
    assert s["compiled_cpu_us_per_event"] == 6.0 and s["cpu_ratio"] == 0.5
    lines = compiled.report(figures)
    assert "6.00 us" in lines[0] and "12.00 us (0.50x; medians of 2 interleaved pairs)" in lines[0]
    assert lines[2] == "events lost: 1 in 4 runs"


def test_a_tracer_is_started_pure_python_only_in_the_python_mode(monkeypatch):
    monkeypatch.setenv(PURE_PYTHON_ENV, "0")
    with compiled.decoding("python"):
        assert os.environ[PURE_PYTHON_ENV] == "1"
    with compiled.decoding("compiled"):
        assert PURE_PYTHON_ENV not in os.environ
    assert os.environ[PURE_PYTHON_ENV] == "0"  # as it was
