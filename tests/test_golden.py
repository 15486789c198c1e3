"""Reading back a recording checked into the tree gives, byte for byte, the outputs proctrace gave before.

tests/data/golden/session.rec is one live session of tests/data/golden/workload.py
(a fork tree with a grandchild, an exec with a space, an escape sequence and
bytes that are not UTF-8 in its arguments, a failed exec, non-zero exits, deaths
by SIGTERM and SIGSEGV, a handled signal, a zombie, an adopted orphan, a thread).
Its header was then cut down: the /proc snapshot emptied and the hostname made
neutral, because a recording's header lists every process of the machine it was
made on.

The expected files under tests/data/golden/expected/ were made by the code as it
was before the re-house of issue 11 (commit 8d3777a, package `tracer`), so this
test proves that the outputs did not change. Every case runs proctrace in an
environment made from scratch (TZ, COLUMNS, TERM pinned; stdout a pipe), so the
files are the same on any machine.

They were made with a clone of that commit at /tmp/base, set up by its ./scripts/setup:

    sudo .venv/bin/python tests/data/golden/regenerate.py --proctrace /tmp/base/.venv/bin/proctrace record
    .venv/bin/python tests/data/golden/regenerate.py --proctrace /tmp/base/.venv/bin/proctrace expect

`record` makes a new session.rec (live, as root) and `expect` the expected files
from it. Since then `expect` alone has remade them for these meant changes,
each checked to be the only difference: exec objects end in `path_search`, and
the timeline JSON's execs and processes say `path_misses` and its failed execs
`path_search` (issue 12; session.rec, from before, has them decided on reading).
Regenerate them on purpose only, after a change of output that is meant, with
the `proctrace` executable whose outputs are the new reference (`expect` alone
keeps the recording). The test suite never runs that script.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"
RECORDING = GOLDEN / "session.rec"
EXPECTED = GOLDEN / "expected"
NEUTRAL_HOSTNAME = "golden-host"
# Where a case writes its Chrome trace: replaced by a temporary path when it runs.
EXPORT_PLACEHOLDER = "EXPORT.json"


@dataclass(frozen=True)
class Case:
    name: str  # expected/<name>.out holds its stdout; expected/<name>.json its exported trace, if any
    args: tuple[str, ...]

    @property
    def expected_stdout(self) -> Path:
        return EXPECTED / f"{self.name}.out"

    @property
    def expected_export(self) -> Path | None:
        return EXPECTED / f"{self.name}.json" if EXPORT_PLACEHOLDER in self.args else None


CASES = (
    Case("json", ("--json",)),
    Case("timeline-json", ("--timeline", "--json")),
    Case("tree", ("--tree",)),
    Case("summary", ("--summary",)),
    Case("timeline", ("--timeline",)),
    Case("stream", ("--color", "never")),
    Case("stream-color", ("--color", "always")),
    Case("views-color", ("--timeline", "--tree", "--summary", "--color", "always")),
    Case("export-trace", ("--export-trace", EXPORT_PLACEHOLDER, "--color", "never")),
    Case("follow-sh-json", ("-c", "sh", "-f", "--json")),
    Case("kinds-no-threads", ("-e", "exec,exit,signal", "--no-threads", "--color", "never")),
)


def pinned_environment() -> dict[str, str]:
    """Only what proctrace needs, with every input that changes how it prints fixed."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "COLUMNS": "100",
        "LINES": "40",
        "TERM": "xterm-256color",
    }


@dataclass(frozen=True)
class Outputs:
    returncode: int
    stdout: bytes
    stderr: bytes
    export: bytes | None


def run_case(proctrace: Sequence[str], case: Case, workdir: Path) -> Outputs:
    """Run `proctrace -r session.rec` with the case's arguments; workdir receives the exported trace."""
    export = workdir / f"{case.name}.json"
    args = [str(export) if arg == EXPORT_PLACEHOLDER else arg for arg in case.args]
    result = subprocess.run(
        [*proctrace, "-r", str(RECORDING), *args],
        env=pinned_environment(),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    exported = export.read_bytes() if case.expected_export is not None and export.exists() else None
    return Outputs(result.returncode, result.stdout, result.stderr, exported)


def differences(expected: bytes, actual: bytes, name: str) -> str:
    lines = difflib.unified_diff(
        expected.decode(errors="backslashreplace").splitlines(keepends=True),
        actual.decode(errors="backslashreplace").splitlines(keepends=True),
        fromfile=f"expected/{name}",
        tofile="now",
    )
    return "".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_replayed_outputs_are_unchanged(case: Case, tmp_path: Path) -> None:
    outputs = run_case([sys.executable, "-m", "proctrace"], case, tmp_path)
    assert (outputs.returncode, outputs.stderr) == (0, b""), outputs.stderr.decode(errors="backslashreplace")
    expected = case.expected_stdout.read_bytes()
    assert outputs.stdout == expected, differences(expected, outputs.stdout, case.expected_stdout.name)
    if case.expected_export is not None:
        expected = case.expected_export.read_bytes()
        assert outputs.export is not None, "no trace was exported"
        assert outputs.export == expected, differences(expected, outputs.export, case.expected_export.name)


def test_every_expected_file_belongs_to_a_case() -> None:
    """A case removed from CASES must take its files with it, or they pin nothing."""
    owned = {case.expected_stdout for case in CASES} | {case.expected_export for case in CASES}
    assert set(EXPECTED.iterdir()) <= owned


def test_the_recording_is_small_and_lists_no_process_of_the_machine_it_was_made_on() -> None:
    with RECORDING.open() as recording:
        header = json.loads(recording.readline())
    assert RECORDING.stat().st_size < 48 * 1024
    assert header["snapshot"] == []
    assert header["hostname"] == NEUTRAL_HOSTNAME
