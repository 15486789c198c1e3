"""The compiled decoder and renderer against the Python ones:
``python -m proctrace.bench.compiled [--reps N] [--seconds S]``, as root.

The bench's storm runs under `proctrace -o /dev/null` (the README's command,
to no terminal) with the compiled modules and with PROCTRACE_PURE_PYTHON=1,
interleaved with untraced runs: untraced, compiled, untraced, Python,
untraced, ... Each traced rate is divided by the mean of the untraced runs
either side of it. Prints proctrace's CPU per event for each, their ratio,
each one's storm slowdown and the events lost; modifies no file of the checkout.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proctrace import PURE_PYTHON_ENV
from proctrace.bench import progress
from proctrace.bench.measure import measure
from proctrace.bench.stats import bracketing_baselines, median, paired_ratios, slowdown_pct
from proctrace.bench.storm import Storm
from proctrace.bench.tracers import Config
from proctrace.bench.workspace import interleaved_main

MODES = ("compiled", "python")


@contextlib.contextmanager
def decoding(mode: str) -> Iterator[None]:
    """The environment a tracer started now inherits: the compiled modules, or Python only."""
    before = os.environ.pop(PURE_PYTHON_ENV, None)
    if mode == "python":
        os.environ[PURE_PYTHON_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(PURE_PYTHON_ENV, None)
        if before is not None:
            os.environ[PURE_PYTHON_ENV] = before


def run(reps: int, seconds: float, workdir: Path) -> dict[str, list[Any]]:
    storm = Storm(workdir)
    figures: dict[str, list[Any]] = {"untraced": [], **{m: [] for m in MODES}, **{f"{m}_cpu": [] for m in MODES}}
    figures["lost"] = []
    untraced = Config("untraced", "none")
    for rep in range(reps):
        for mode in MODES:
            progress(f"rep {rep + 1}/{reps}: {mode}")
            figures["untraced"].append(measure(untraced, storm, seconds, workdir).storm.rate)
            with decoding(mode):
                m = measure(Config(mode, "proctrace"), storm, seconds, workdir)
            figures[mode].append(m.storm.rate)
            figures[f"{mode}_cpu"].append(m.rep.get("cpu_us_per_event"))
            figures["lost"].append(m.rep.get("lost") or 0)
    figures["untraced"].append(measure(untraced, storm, seconds, workdir).storm.rate)
    return figures


def summary(figures: dict[str, list[Any]]) -> dict[str, Any]:
    """Median CPU per event of each mode and their ratio; each mode's median
    slowdown against the untraced runs bracketing it (u0 compiled u1 python u2
    compiled u3 ...: compiled by (u0,u1), Python by (u1,u2), ...)."""
    brackets = bracketing_baselines(list(figures["untraced"]))
    out: dict[str, Any] = {"lost": sum(figures["lost"])}
    for i, mode in enumerate(MODES):
        out[f"{mode}_cpu_us_per_event"] = median(figures[f"{mode}_cpu"])
        ratio = median(paired_ratios(list(figures[mode]), brackets[i :: len(MODES)]))
        out[f"{mode}_slowdown_pct"] = slowdown_pct(ratio)
    compiled, python = out["compiled_cpu_us_per_event"], out["python_cpu_us_per_event"]
    out["cpu_ratio"] = compiled / python if compiled and python else None
    return out


def report(figures: dict[str, list[Any]]) -> list[str]:
    s = summary(figures)
    reps = len(figures["compiled"])

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.1f}%"

    def us(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} us"

    ratio = "n/a" if s["cpu_ratio"] is None else f"{s['cpu_ratio']:.2f}x"
    return [
        f"CPU per event, compiled: {us(s['compiled_cpu_us_per_event'])}; Python only: "
        f"{us(s['python_cpu_us_per_event'])} ({ratio}; medians of {reps} interleaved pairs)",
        f"storm slowdown, compiled: {pct(s['compiled_slowdown_pct'])}; Python only: {pct(s['python_slowdown_pct'])}",
        f"events lost: {s['lost']} in {2 * reps} runs",
    ]


def main(argv: list[str] | None = None) -> int:
    return interleaved_main(argv, "python -m proctrace.bench.compiled", __doc__ or "", 5, run, report)


if __name__ == "__main__":
    sys.exit(main())
