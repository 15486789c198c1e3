"""The soak: trace a million short-lived processes and watch proctrace's memory.

    python -m proctrace.bench.soak [--processes 1000000] [--workers 2] [--interval 5] [--pretty]

(``sudo ./scripts/soak`` in a checkout), as root. It compiles spawner.c
(shipped with this package) into a temporary directory and runs it under
proctrace in run-a-command mode, so only the storm is traced:

    proctrace --json -o /dev/null -- spawner N WORKERS /bin/true PROGRESS

Each of the N processes is one fork, exec, exit and reap. Every --interval
seconds the soak reads proctrace's VmRSS from /proc/<pid>/status and the
spawner's progress, and prints a row; at the end, the start, end and largest
RSS, proctrace's own totals ("N events, M lost") and the number of events the
storm must have produced (received + lost should equal it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proctrace.bench.counting import parse_summary
from proctrace.bench.storm import compile_c
from proctrace.bench.tracers import proctrace_command

PROGRAM = "/bin/true"


def expected_events(processes: int, workers: int) -> int:
    """Events the spawner's tree produces under a tracer that follows it
    (see spawner.c): its exec, a fork, exit and reap per worker, four per
    process, four for the after-storm run, its exit, and the tracer's reap of it."""
    return 1 + 3 * workers + 4 * processes + 4 + 1 + 1


def vmrss_kib(status_text: str) -> int | None:
    """VmRSS in KiB from the text of /proc/<pid>/status; None if absent
    (a process that has exited, or a kernel thread)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmRSS unit: {line!r}")
            return int(value)
    return None


def parse_totals(stderr: str) -> tuple[int, int] | None:
    """(events, lost) from proctrace's final stderr line, or None if it never printed one."""
    return parse_summary(stderr)


def read_progress(data: bytes) -> int:
    """Processes reaped so far: the spawner's progress file is one little-endian u64."""
    return int.from_bytes(data[:8], "little") if len(data) >= 8 else 0


@dataclass
class Sample:
    seconds: float
    processes: int
    rss_kib: int


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def row(self, sample: Sample) -> str:
        return f"{sample.seconds:8.1f} {sample.processes:>12,} {sample.rss_kib / 1024:10.1f}"

    @staticmethod
    def header() -> str:
        return f"{'time s':>8} {'processes':>12} {'RSS MiB':>10}"

    def summary(self) -> list[str]:
        if not self.samples:
            return ["no RSS samples (proctrace ended before the first one)"]
        first, last = self.samples[0], self.samples[-1]
        peak = max(self.samples, key=lambda s: s.rss_kib)
        return [
            f"RSS start {first.rss_kib / 1024:.1f} MiB (at {first.processes:,} processes), "
            f"end {last.rss_kib / 1024:.1f} MiB (at {last.processes:,}), "
            f"max {peak.rss_kib / 1024:.1f} MiB (at {peak.processes:,})",
        ]


def read_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return vmrss_kib(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def read_progress_file(path: Path) -> int:
    try:
        return read_progress(path.read_bytes())
    except FileNotFoundError:
        return 0


def soak(processes: int, workers: int, interval: float, pretty: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="proctrace-soak-") as tmp:
        workdir = Path(tmp)
        spawner = workdir / "spawner"
        if not compile_c("spawner.c", workdir, spawner):
            print("soak: needs a C compiler (gcc)", file=sys.stderr)
            return 1
        progress = workdir / "progress"
        stderr_path = workdir / "stderr"
        fmt = [] if pretty else ["--json"]
        command = [
            *proctrace_command(), *fmt, "-o", "/dev/null",
            "--", str(spawner), str(processes), str(workers), PROGRAM, str(progress),
        ]  # fmt: skip
        print("soak: " + " ".join(command), flush=True)
        report = Report()
        with open(stderr_path, "w+") as err:
            began = attached = time.monotonic()
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
            try:
                # The first sample is taken once the probes are attached: the
                # start figure is the tracer ready to run, not the interpreter starting.
                while proc.poll() is None and "proctrace: tracing" not in stderr_path.read_text():
                    time.sleep(0.05)
                attached = time.monotonic()
                print(Report.header(), flush=True)
                while proc.poll() is None:
                    rss = read_rss(proc.pid)
                    if rss is not None:
                        sample = Sample(time.monotonic() - began, read_progress_file(progress), rss)
                        report.add(sample)
                        print(report.row(sample), flush=True)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=interval)
            except KeyboardInterrupt:
                proc.terminate()  # our own proctrace, by pid
                proc.wait()
                raise
            elapsed = time.monotonic() - attached
            err.seek(0)
            stderr = err.read()
        done = read_progress_file(progress)
    print()
    for line in report.summary():
        print(line)
    totals = parse_totals(stderr)
    expected = expected_events(processes, workers)
    rate = done / elapsed if elapsed > 0 else 0.0
    print(f"processes {done:,} in {elapsed:.0f} s from attach ({rate:,.0f}/s); proctrace exit {proc.returncode}")
    if totals is None:
        print("proctrace printed no totals; its stderr:\n" + stderr)
        return 1
    events, lost = totals
    verdict = "exact" if events + lost == expected else f"MISMATCH by {events + lost - expected:+,}"
    print(f"events {events:,}, lost {lost:,}; received + lost = {events + lost:,}, expected {expected:,} ({verdict})")
    noise = [line for line in stderr.splitlines() if not line.startswith("proctrace: ")]
    if noise:
        print(f"stderr lines not from proctrace: {len(noise)}, first: {noise[0]!r}")
    return 0 if proc.returncode == 0 and events + lost == expected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proctrace.bench.soak",
        description="Soak proctrace: trace a million short-lived processes and watch its memory (as root).",
    )
    parser.add_argument("--processes", type=int, default=1_000_000, help="short-lived processes to run (1000000)")
    parser.add_argument("--workers", type=int, default=2, help="spawner processes running in parallel (2)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples (5)")
    parser.add_argument("--pretty", action="store_true", help="render the pretty stream instead of JSON")
    args = parser.parse_args(argv)
    if args.processes < 0 or args.workers < 1 or args.interval <= 0:
        parser.error("--processes >= 0, --workers >= 1, --interval > 0")
    if os.geteuid() != 0:
        parser.error("needs root (proctrace loads BPF programs)")
    return soak(args.processes, args.workers, args.interval, args.pretty)


if __name__ == "__main__":
    sys.exit(main())
