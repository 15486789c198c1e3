"""The HTML report at scale: ``python -m proctrace.bench.report [--processes N]``, as root.

What users run, end to end:

1. Record a session of N short processes (default 100,000) with the README's
   command: ``proctrace -q -w FILE -- spawner N 2 /bin/true``. (Or give one
   with ``--recording FILE``; then no root is needed.)
2. Write its report, ``proctrace -r FILE --report OUT.html -o /dev/null``, and
   compare its wall time and peak RSS (GNU time) with the same replay without
   the report, run alternately in the same bench.
3. Open the page from file:// in the distribution's headless Chromium
   (Playwright) and time it until it is interactive (the page's own ready
   mark), against the same browser opening an empty page; then time a search
   that narrows the 100,000 rows.

Prints one table; writes only to a temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proctrace.bench import BenchError
from proctrace.bench.stats import median
from proctrace.bench.storm import compile_c
from proctrace.bench.tracers import proctrace_command

SIZE_LIMIT = 20 << 20  # the bound on a 100,000-process report
READY_LIMIT_S = 3.0  # and on its time to interactive


def gnu_time(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of running `argv` to its end."""
    if not Path("/usr/bin/time").exists():
        raise BenchError("GNU time (/usr/bin/time) is needed: apt-get install time")
    started = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed: {done.stderr.strip()[-400:]}")
    return wall, int(done.stderr.strip().splitlines()[-1])


def record(processes: int, workdir: Path) -> Path:
    spawner = workdir / "spawner"
    if not compile_c("spawner.c", workdir, spawner):
        raise BenchError("a C compiler is needed to build the spawner (apt-get install gcc)")
    out = workdir / "session.rec"
    argv = [*proctrace_command(), "-q", "-w", str(out), "--", str(spawner), str(processes), "2", "/bin/true"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"recording failed: {done.stderr.strip()[-400:]}")
    return out


def browser_times(page_path: Path, reps: int) -> dict[str, float]:
    """Median seconds to open an empty page, to the report's ready mark, and
    for a search of one pid to narrow the rows."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BenchError("playwright is needed (the test extra: ./scripts/setup --test-tools)") from None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise BenchError("chromium is needed (apt-get install chromium)")
    empty = page_path.parent / "empty.html"
    empty.write_text("<!DOCTYPE html><title>empty</title><body></body>")
    times: dict[str, list[float]] = {"empty": [], "ready": [], "search": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(reps):
            for name, path in (("empty", empty), ("ready", page_path)):
                context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
                page = context.new_page()
                started = time.monotonic()
                page.goto(path.as_uri())
                if name == "ready":
                    while not page.evaluate("document.body.dataset.ready === '1'"):
                        page.wait_for_timeout(10)
                times[name].append(time.monotonic() - started)
                if name == "ready":
                    pid = page.evaluate("document.querySelector('.row').dataset.pid")
                    started = time.monotonic()
                    page.fill("#search", pid)
                    while not page.evaluate("document.querySelector('#shown').textContent.includes(' of ')"):
                        page.wait_for_timeout(5)
                    times["search"].append(time.monotonic() - started)
                context.close()
        browser.close()
    return {name: median(values) or 0.0 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proctrace.bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=100_000, help="processes in the recorded session")
    parser.add_argument("--recording", type=Path, help="use this recording instead of making one (no root needed)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each measurement (medians are shown)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="proctrace-bench-report-") as tmp:
            workdir = Path(tmp)
            rec = args.recording or record(args.processes, workdir)
            page = workdir / "report.html"
            replay = [*proctrace_command(), "-r", str(rec), "-o", "/dev/null"]
            plain: list[tuple[float, int]] = []
            with_report: list[tuple[float, int]] = []
            for _ in range(args.reps):  # alternated: the machine's noise falls on both alike
                plain.append(gnu_time(replay))
                with_report.append(gnu_time([*replay, "--report", str(page), "--force"]))
            size = page.stat().st_size
            browser = browser_times(page, args.reps)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    wall = median(t for t, _ in plain) or 0.0
    wall_report = median(t for t, _ in with_report) or 0.0
    rss = median(r for _, r in plain) or 0
    rss_report = median(r for _, r in with_report) or 0
    what = f"recording {args.recording}" if args.recording else f"{args.processes} processes recorded"
    print(f"HTML report of {what} (medians of {args.reps} runs)")
    print(f"  replay -o /dev/null                 {wall:7.2f} s   peak RSS {rss / 1024:6.1f} MiB")
    print(
        f"  replay -o /dev/null --report        {wall_report:7.2f} s   peak RSS {rss_report / 1024:6.1f} MiB"
        f"   ({wall_report / wall:.2f}x the time)"
    )
    limit = "within" if size <= SIZE_LIMIT else "OVER"
    print(f"  report size                         {size / (1 << 20):7.1f} MiB ({limit} the 20 MiB bound)")
    ready = browser["ready"]
    print(
        f"  Chromium: empty page {browser['empty']:.2f} s; report interactive {ready:.2f} s "
        f"({ready / max(browser['empty'], 1e-9):.1f}x the empty page; {'within' if ready <= READY_LIMIT_S else 'OVER'}"
        f" the 3 s bound); a search narrowing the rows {browser['search']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
