"""Where a bench works: a temporary directory in tmpfs, cleaned up with the
tracers it left running; and the command line of the small benches of
interleaved storms (bench.top, bench.compiled)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from proctrace.bench import BenchError
from proctrace.bench.tracers import stop_all

T = TypeVar("T")


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory in tmpfs where there is one: tracer outputs written
    there cost no disk writeback during the storm. On the way out, tracers this
    bench left running (an error, a Ctrl-C) are stopped."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = Path(tempfile.mkdtemp(prefix="ptbench-", dir=base))
    try:
        yield path
    finally:
        stop_all()
        shutil.rmtree(path, ignore_errors=True)


def interleaved_main(
    argv: list[str] | None,
    prog: str,
    doc: str,
    default_reps: int,
    run: Callable[[int, float, Path], T],
    report: Callable[[T], list[str]],
    needs: Callable[[], str | None] = lambda: None,
) -> int:
    """The command line of a bench of interleaved storms (top, compiled):
    --reps and --seconds, as root, `run(reps, seconds, workdir)` in a
    temporary directory, then its report. `needs` says what is missing, if anything."""
    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--reps", type=int, default=default_reps, help=f"interleaved repetitions (default {default_reps})")
    p.add_argument("--seconds", type=float, default=3.0, help="storm length per run (default 3)")
    args = p.parse_args(argv)
    missing = "run as root (it loads BPF programs)" if os.geteuid() != 0 else needs()
    if missing:
        print(f"bench: {missing}", file=sys.stderr)
        return 1
    try:
        with workspace() as workdir:
            figures = run(args.reps, args.seconds, workdir)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(figures)))
    return 0
