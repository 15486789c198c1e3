"""The report's bench (proctrace.bench.report) run end to end on a small
recording: it replays it with and without --report through the installed
command, opens the page in Chromium and prints its figures."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from tests.environment import requires
from tests.test_report import session_events, write_recording


def test_the_bench_prints_time_size_and_load_of_a_report(tmp_path):
    requires(shutil.which("chromium") is not None, "chromium is not installed (Debian package chromium)")
    requires(shutil.which("time", path="/usr/bin") is not None, "GNU time is not installed (Debian package time)")
    rec = tmp_path / "s.rec"
    write_recording(rec, session_events())
    # As it is run, in a process of its own (it starts its own Playwright, which
    # cannot run beside the tests' browser in one process).
    done = subprocess.run(
        [sys.executable, "-m", "proctrace.bench.report", "--recording", str(rec), "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"replay -o /dev/null --report +\d+\.\d\d s +peak RSS +\d+\.\d MiB +\(\d+\.\d\dx the time\)", out)
    assert re.search(r"report size +0\.\d MiB \(within the 20 MiB bound\)", out)
    assert re.search(r"report interactive \d+\.\d\d s .*within the 3 s bound", out)
    assert list(tmp_path.iterdir()) == [rec]  # it wrote only to a directory of its own
