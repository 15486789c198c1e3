"""The storm under the live view: ``python -m proctrace.bench.top [--reps N]``, as root.

`proctrace --top` runs in a tmux pane (a real pseudo-terminal that is drawn
to, as a person's is), and the storm's rate is compared with untraced runs and
with the plain stream (`proctrace -o /dev/null`) in the same run, interleaved:
untraced, --top, untraced, stream, untraced, ... Each traced rate is divided by
the mean of the untraced runs either side of it. Losses are the session's own
closing count. The CPU each tracer used while the storm ran, over the events
it took, is the steadier figure of the two: a rate moves with whatever else
the shared machine runs, a tracer's own CPU much less. Prints one table;
modifies no file of the checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError
from proctrace.bench.machine import cpu_seconds
from proctrace.bench.stats import bracketing_baselines, median, paired_ratios, slowdown_pct
from proctrace.bench.storm import Storm
from proctrace.bench.tracers import PROCTRACE_READY, TracerProcess, proctrace_argv, proctrace_command
from proctrace.bench.workspace import interleaved_main

SUMMARY = re.compile(r"proctrace: (\d+) events, (\d+) lost")
READY_TIMEOUT_S = 120.0


def closing_counts(stderr: str) -> tuple[int, int]:
    """(events, lost) from the session's closing line on stderr."""
    found = SUMMARY.findall(stderr)
    if not found:
        raise BenchError(f"no closing summary from proctrace --top: {stderr.strip()[-300:]}")
    events, lost = found[-1]
    return int(events), int(lost)


class TopPane:
    """proctrace --top in a tmux server of its own, its stderr kept in a file."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"pt-bench-top-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stderr = workdir / "top.err"
        self.done = workdir / "top.done"
        command = shlex.join([*proctrace_command(), "--top"])
        script = f"{command} 2>{shlex.quote(str(self.stderr))}; touch {shlex.quote(str(self.done))}; sleep 600"
        self._tmux("new-session", "-d", "-x", "120", "-y", "40", "sh", "-c", script)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not re.search(PROCTRACE_READY, self._text(), re.M) or "q quit" not in self._tmux("capture-pane", "-p"):
            if time.monotonic() > deadline or self.done.exists():
                self.close()
                raise BenchError(f"proctrace --top did not start: {self._text()[-300:]}")
            time.sleep(0.2)
        self.pid = self._proctrace_pid()

    def _proctrace_pid(self) -> int:
        """The session's pid: the pane's shell runs it as its only child."""
        shell = int(self._tmux("list-panes", "-F", "#{pane_pid}").split()[0])
        with open(f"/proc/{shell}/task/{shell}/children") as f:
            children = f.read().split()
        if len(children) != 1:
            raise BenchError(f"the tmux pane's shell has children {children}, not proctrace alone")
        return int(children[0])

    def _text(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return done.stdout

    def quit(self) -> tuple[int, int]:
        self._tmux("send-keys", "q")
        deadline = time.monotonic() + 60
        while not self.done.exists():
            if time.monotonic() > deadline:
                raise BenchError("proctrace --top did not end on q")
            time.sleep(0.1)
        counts = closing_counts(self._text())
        self.close()
        self.done.unlink()
        return counts

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def cpu_us_per_event(cpu_before: float | None, cpu_after: float | None, events: int) -> float | None:
    """A tracer's CPU over the storm, per event it took (the few before the
    storm count too, their CPU not: a slight underestimate, the same for both)."""
    if cpu_before is None or cpu_after is None or not events:
        return None
    return (cpu_after - cpu_before) / events * 1e6


def storm_under(storm: Storm, seconds: float, pid: int) -> tuple[float | None, float | None, float | None]:
    """The storm's rate, and the CPU seconds of tracer `pid` before and after it."""
    before = cpu_seconds(pid)
    rate = storm.run(seconds).rate
    return rate, before, cpu_seconds(pid)


def run(reps: int, seconds: float, workdir: Path) -> dict[str, list[float | None] | list[int]]:
    storm = Storm(workdir)
    untraced: list[float | None] = []
    top: list[float | None] = []
    stream: list[float | None] = []
    top_cpu: list[float | None] = []
    stream_cpu: list[float | None] = []
    lost: list[int] = []
    for _ in range(reps):
        untraced.append(storm.run(seconds).rate)
        pane = TopPane(workdir)
        try:
            rate, before, after = storm_under(storm, seconds, pane.pid)
            top.append(rate)
        finally:
            top_events, top_lost = pane.quit()
        top_cpu.append(cpu_us_per_event(before, after, top_events))
        lost.append(top_lost)
        untraced.append(storm.run(seconds).rate)
        tracer = TracerProcess(proctrace_argv([], None), ready_stderr=PROCTRACE_READY)
        try:
            tracer.wait_ready()
            rate, before, after = storm_under(storm, seconds, tracer.pid)
            stream.append(rate)
        finally:
            tracer.stop()
        stream_cpu.append(cpu_us_per_event(before, after, closing_counts(tracer.stderr)[0]))
    untraced.append(storm.run(seconds).rate)
    return {
        "untraced": untraced,
        "top": top,
        "stream": stream,
        "lost": lost,
        "top_cpu_us_per_event": top_cpu,
        "stream_cpu_us_per_event": stream_cpu,
    }


def summary(figures: dict[str, list[float | None] | list[int]]) -> dict[str, Any]:
    """Median slowdown of --top and of the stream, each against the untraced
    runs that bracket it, and the events --top lost: as the bench's results
    keep them (section 9)."""
    untraced = list(figures["untraced"])
    # untraced runs: u0 top u1 stream u2 top u3 ...: --top is bracketed by (u0,u1), the stream by (u1,u2)...
    brackets = bracketing_baselines(untraced)
    top_ratio = median(paired_ratios(list(figures["top"]), brackets[0::2]))
    stream_ratio = median(paired_ratios(list(figures["stream"]), brackets[1::2]))
    return {
        "available": True,
        "runs": len(figures["lost"]),
        "slowdown_pct": slowdown_pct(top_ratio),
        "stream_slowdown_pct": slowdown_pct(stream_ratio),
        # Absent from the figures of a run made before they were measured
        "cpu_us_per_event": median(list(figures.get("top_cpu_us_per_event", []))),
        "stream_cpu_us_per_event": median(list(figures.get("stream_cpu_us_per_event", []))),
        "lost": sum(int(n or 0) for n in figures["lost"]),
        "figures": figures,
    }


def report(figures: dict[str, list[float | None] | list[int]]) -> list[str]:
    """The table of summary()."""
    s = summary(figures)

    def us(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} us"

    return [
        f"storm slowdown under --top in a tmux pane (median): {s['slowdown_pct']:+.1f}%",
        f"storm slowdown under the plain stream (median):     {s['stream_slowdown_pct']:+.1f}%",
        f"CPU per event (median): --top {us(s['cpu_us_per_event'])}, the stream {us(s['stream_cpu_us_per_event'])}",
        f"events lost by --top: {s['lost']} in {s['runs']} runs",
    ]


def main(argv: list[str] | None = None) -> int:
    def needs() -> str | None:
        return None if shutil.which("tmux") else "needs tmux (scripts/setup --test-tools installs it)"

    return interleaved_main(argv, "python -m proctrace.bench.top", __doc__ or "", 4, run, report, needs)


if __name__ == "__main__":
    sys.exit(main())
