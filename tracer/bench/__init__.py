"""The benchmark: proctrace's cost against no tracer, bpftrace and forkstat under a
fork/exec/exit storm, run with ``python -m proctrace.bench`` (as root).

This module holds only what every part of the bench shares: the error that stops
a measurement, the progress line, and the files shipped with the bench. The parts, by concern:

- ``storm``: the storm workload (storm.c, compiled at run time) and its report;
  ``pystorm`` stands in for it where there is no C compiler;
- ``tracers``: starting each tracer, waiting until it is ready, stopping it and
  waiting for its probes to be detached;
- ``machine``: what a process and the machine use, from /proc (CPU, RSS, other
  BPF tracers, others' CPU time);
- ``counting``: the storm's events in each tracer's output;
- ``lost_counter``: proctrace's kernel-side loss counter, read with bpf(2);
- ``stats``: medians, baselines and ratios;
- ``measure``: one storm under one configuration, repeated when disturbed;
- ``readback``: timing the reading back of a recording (programs in ``readers``);
- ``overload``: a tiny buffer under the storm, every lost event counted;
- ``flood``: the storm inside a signal flood (flood.c: a kill loop and a
  process under strace), the workload of ``flood_section``: lifecycle events
  lost (none may be), signals streamed, folded and lost, the storm's slowdown;
- ``run``: the sections of a run, in order;
- ``results``: the results document, the targets, and where it is written;
- ``table``: the printed tables;
- ``cli``: the command line;
- ``soak``: a long soak of proctrace's memory (``python -m proctrace.bench.soak``);
- ``table_soak``: a soak of the process table alone, without BPF
  (``python -m proctrace.bench.table_soak``);
- ``workspace``: the temporary directory a bench works in, and the command
  line of the small interleaved benches (``interleaved_main``);
- ``top`` and ``compiled``: the storm under the live view, and the compiled
  decoder and renderer against Python (each ``python -m`` on its own);
- ``bpftime``: the BPF programs' own time per storm process, from the
  kernel's run-time statistics (``python -m proctrace.bench.bpftime``).
"""

from __future__ import annotations

import sys
import time


class BenchError(Exception):
    """A run could not be measured; the message says why."""


_STARTED = time.monotonic()


def progress(text: str) -> None:
    """One line on stderr, stamped with the seconds since the bench started."""
    print(f"bench: {time.monotonic() - _STARTED:5.1f}s {text}", file=sys.stderr, flush=True)


def package_file(name: str) -> bytes:
    """A file shipped with proctrace.bench: storm.c, spawner.c, flood.c, capture.bt."""
    # Imported here: the timed readers (proctrace.bench.readers) start without it.
    from importlib import resources

    return resources.files("proctrace.bench").joinpath(name).read_bytes()
