"""Memory soak of the process table: feed it N short-lived processes and print RSS.

Each process is forked by one long-lived parent, execs, exits and is reaped:
four events, the shape of a build or a shell loop. Pids cycle through 32768
values, so they are reused as on a real machine. The table must keep its
memory bounded (finished processes leave it after the horizon) while the
summary's aggregates keep counting all of them.

    python -m proctrace.bench.table_soak [--processes 1000000] [--keep 10000]

(``python3 scripts/soak_timeline.py`` in a checkout). No root, no BPF: the
events are built here.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from proctrace.model.events import CLONE_VM, ExecEvent, ExitEvent, ForkEvent, ReapEvent, WaitStatus
from proctrace.model.process_table import ProcessTable

PARENT = 100
PID_SPACE = 32768
BATCH = 1000  # processes per write(), as a live drain hands over batches


def rss_mib() -> float:
    """The resident set now, from /proc/self/statm (pages)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def batch(first: int, count: int, ts: int) -> tuple[list, int]:
    events: list = []
    for n in range(first, first + count):
        pid = 300 + n % PID_SPACE
        start = ts
        # Fresh bytes per process, as decoded events have: nothing shared between records.
        argv = [b"cc", b"-c", b"src/file%d.c" % n, b"-o", b"obj/file%d.o" % n]
        events.append(ForkEvent(ts + 20_000, PARENT, PARENT, 1, 0, b"make", 1, 0, pid, pid, PARENT, CLONE_VM))
        events.append(ExecEvent(ts + 100_000, pid, pid, PARENT, 0, b"cc", start, 0, b"/usr/bin/%s" % argv[0], argv))
        code = 1 if n % 97 == 0 else 0  # a few failures for the summary to count
        events.append(ExitEvent(ts + 900_000, pid, pid, PARENT, 0, b"cc", start, 0, WaitStatus(code << 8), 0, True))
        events.append(ReapEvent(ts + 950_000, PARENT, PARENT, 1, 0, b"make", 1, 0, pid, WaitStatus(code << 8)))
        ts += 1_000_000
    return events, ts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proctrace.bench.table_soak", description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=1_000_000)
    parser.add_argument("--keep", type=int, default=10_000, help="finished processes kept (the horizon)")
    args = parser.parse_args(argv)

    table = ProcessTable(keep_finished=args.keep)
    ts = 1_000_000_000
    print(f"start: rss {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB")
    began = time.perf_counter()
    warm = min(args.processes, 4 * args.keep)
    report_every = max(args.processes // 10, BATCH)
    done = 0
    in_table = 0.0  # seconds spent in the table itself, not making events
    while done < args.processes:
        count = min(BATCH, args.processes - done)
        events, ts = batch(done, count, ts)
        t0 = time.perf_counter()
        table.write(events)
        in_table += time.perf_counter() - t0
        done += count
        if done == warm:
            print(f"after {done:,} processes (horizon full): rss {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB")
        elif done % report_every == 0:
            print(f"after {done:,} processes: rss {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB")
    elapsed = time.perf_counter() - began
    agg = table.aggregates
    print(
        f"end: {done:,} processes ({4 * done:,} events) in {elapsed:.1f} s "
        f"({4 * done / elapsed:,.0f} events/s); rss {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB"
    )
    print(
        f"in the table: {in_table:.1f} s ({4 * done / in_table:,.0f} events/s, {in_table / done * 1e6:.1f} us/process)"
    )
    print(
        f"table keeps {len(table):,} processes; aggregates counted {agg.processes:,} "
        f"({agg.nonzero_exits:,} non-zero exits)"
    )
    expected_failures = sum(1 for n in range(done) if n % 97 == 0)
    if agg.processes != done + 0 or agg.nonzero_exits != expected_failures:
        print("aggregates are wrong", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
