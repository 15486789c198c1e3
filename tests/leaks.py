"""How much memory a piece of work keeps: for the tests of the compiled modules,
where a missed reference count leaks with every call."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def bytes_kept(work: Callable[[], None]) -> int:
    """Bytes still allocated after a second run of `work` (the first fills the caches)."""
    work()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
