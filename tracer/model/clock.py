"""Kernel timestamps to wall-clock time.

BPF stamps events with bpf_ktime_get_ns(), CLOCK_MONOTONIC. The offset to
CLOCK_REALTIME is taken once per session, so every event's wall time is
consistent with every other's even if the system clock is stepped later.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

# Bounds a timestamp or clock offset read from outside (a recording), so that
# every wall-clock time derived from it stays formattable.
TS_LIMIT = 1 << 63


class Clock:
    def __init__(self, realtime_minus_monotonic_ns: int | None = None) -> None:
        if realtime_minus_monotonic_ns is None:
            realtime_minus_monotonic_ns = time.time_ns() - time.monotonic_ns()
        self.offset_ns = realtime_minus_monotonic_ns
        self._iso_second = -1
        self._iso_prefix = ""

    def wall_ns(self, ts_ns: int) -> int:
        return ts_ns + self.offset_ns

    def iso(self, ts_ns: int) -> str:
        """ISO 8601 UTC with microseconds; the formatted second is cached, since
        consecutive events almost always share it. This runs for every event of
        --json and of a recording, hence the % formatting (faster than a format spec)."""
        wall = ts_ns + self.offset_ns
        second = wall // 1_000_000_000
        if second != self._iso_second:
            self._iso_second = second
            self._iso_prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        return self._iso_prefix + "%06dZ" % (wall % 1_000_000_000 // 1000)  # noqa: UP031
