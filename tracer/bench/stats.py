"""The statistics of the bench: medians, the untraced baselines that bracket each
repetition, rate ratios and slowdowns, and rates beyond start-up."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that exist; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def bracketing_baselines(untraced: list[float | None]) -> list[float | None]:
    """Baseline of each repetition: the mean of the untraced run that opens it and
    the one that opens the next (the run ends with one more untraced run), so the
    machine's drift during a repetition cancels out of its ratios."""
    out: list[float | None] = []
    for before, after in itertools.pairwise(untraced):
        present = [v for v in (before, after) if v]
        out.append(sum(present) / len(present) if present else None)
    return out


def paired_ratios(traced: list[float | None], baseline: list[float | None]) -> list[float]:
    """Per-repetition rate ratios traced/baseline."""
    return [t / b for t, b in zip(traced, baseline, strict=False) if t is not None and b]


def slowdown_pct(ratio: float | None) -> float | None:
    """A rate ratio as a slowdown: 0.96 of the untraced rate is a 4% slowdown."""
    return None if ratio is None else (1.0 - ratio) * 100.0


def marginal_rate(small: tuple[int, float | None], large: tuple[int, float | None]) -> float | None:
    """Events per second beyond start-up: from the (events, seconds) of reading a
    small and a large file, so the fixed cost of starting the reader cancels."""
    (n_small, t_small), (n_large, t_large) = small, large
    if t_small is None or t_large is None or n_large <= n_small or t_large <= t_small:
        return None
    return (n_large - n_small) / (t_large - t_small)
