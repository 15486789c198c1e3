"""tracer/model/memo.py: the caches of the per-event path stay bounded."""

from __future__ import annotations

from proctrace.model.memo import CACHE_MAX, remember


def test_remember_stores_and_returns_the_value() -> None:
    cache: dict[int, str] = {}
    assert remember(cache, 7, "seven") == "seven"
    assert cache == {7: "seven"}


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    cache = {i: str(i) for i in range(CACHE_MAX)}
    remember(cache, -1, "new")
    assert cache == {-1: "new"}


def test_a_long_session_of_distinct_keys_never_holds_more_than_the_bound() -> None:
    cache: dict[int, int] = {}
    for i in range(3 * CACHE_MAX + 5):
        remember(cache, i, i)
        assert len(cache) <= CACHE_MAX
