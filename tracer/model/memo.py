"""Bounded caches for the per-event path.

A session sees few distinct command names, statuses, pids and arguments, so
the decoder and the renderers remember what they computed for each. Every such
cache is a plain dict, read inline where it is hot (`cache.get(key) or ...`);
misses go through remember(), which keeps it bounded: a full cache starts over
rather than growing with a long session.
"""

from __future__ import annotations

from typing import TypeVar

CACHE_MAX = 4096
"""Entries per cache."""

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V) -> V:
    """Store `value` under `key` and return it."""
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value
