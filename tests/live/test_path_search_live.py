"""PATH searches traced live (issue 12): the misses of a search that found its
command are path_search true in the JSON, folded into the exec line in the
stream, and no failure in the summary; a command found nowhere stays a failure.
strace, an independent reader of the same syscalls, sees the same attempts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import requires
from tests.live.conftest import ROOT, workload

pytestmark = pytest.mark.live

MISSED = [
    ("/nonexistent-proctrace-1/true", "ENOENT"),
    ("/etc/passwd/true", "ENOTDIR"),
    ("{scratch}/true", "EACCES"),
    ("/nonexistent-proctrace-2/true", "ENOENT"),
]
NOT_FOUND = ("/nonexistent-proctrace-3/proctrace-no-such-command", "ENOENT")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory holding a `true` that cannot be executed. World-readable, as
    the command may run as the user who invoked sudo."""
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "true").write_text("#!/bin/sh\n")
    (directory / "true").chmod(0o644)
    for path in (tmp_path, directory):
        path.chmod(0o755)
    return directory


def expected_misses(scratch: Path) -> list[tuple[str, str]]:
    return [(name.format(scratch=scratch), err) for name, err in MISSED]


def run(tmp_path: Path, *options: str, command: list[str]) -> str:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "proctrace", "-o", str(out), *options, "--", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def test_misses_are_path_search_true_and_a_command_found_nowhere_is_a_failure(trace, scratch: Path):
    t = trace([*workload("path_search.py"), str(scratch)])
    assert t.returncode == 0, t.stderr
    failed = [e for e in t.of_type("exec") if e["errno"] is not None]
    assert [(e["filename"], e["errno"], e["path_search"]) for e in failed] == [
        *((name, err, True) for name, err in expected_misses(scratch)),
        (*NOT_FOUND, False),
    ]
    for e in t.of_type("exec"):
        assert list(e)[-1] == "path_search"
        assert e["path_search"] is False or e["errno"] is not None
    # Each search ended in the exec of /usr/bin/true by the task that missed.
    for argv, misses in ((["true", "by-subprocess"], failed[:3]), (["true", "by-execvp"], failed[3:4])):
        (found,) = [e for e in t.execs_of("/usr/bin/true") if e["argv"] == argv]
        assert {m["tgid"] for m in misses} == {found["tgid"]}
        assert all(m["ts_ns"] < found["ts_ns"] for m in misses)


def test_the_stream_folds_the_misses_into_the_exec_lines(tmp_path: Path, scratch: Path):
    text = run(tmp_path, "--color", "never", command=[*workload("path_search.py"), str(scratch)])
    failed = [line for line in text.splitlines() if " FAILED " in line]
    assert len(failed) == 1 and failed[0].endswith(
        "FAILED ENOENT /nonexistent-proctrace-3/proctrace-no-such-command proctrace-no-such-command"
    )
    execs = [line for line in text.splitlines() if "/usr/bin/true true " in line]
    assert [line.split("/usr/bin/true ", 1)[1] for line in execs] == [
        "true by-subprocess (after 3 PATH misses)",
        "true by-execvp (after 1 PATH miss)",
    ]


def test_the_summary_counts_only_the_real_failure(tmp_path: Path, scratch: Path):
    text = run(tmp_path, "--summary", "--color", "never", command=[*workload("path_search.py"), str(scratch)])
    # The non-zero exit is subprocess's child giving up after its failed exec (255).
    assert "1 non-zero exits, 0 deaths by signal, 1 failed execs\n4 PATH misses folded into their execs\n" in text
    failures = re.findall(r"^exec (E[A-Z]+) +(\S+) +(\d+)$", text, re.MULTILINE)
    assert failures == [(NOT_FOUND[1], NOT_FOUND[0], "1")]


def test_strace_sees_the_same_failed_attempts(trace, tmp_path: Path, scratch: Path):
    requires(shutil.which("strace") is not None, "needs strace")
    log = tmp_path / "strace.log"
    command = [*workload("path_search.py"), str(scratch)]
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(log), *command],
        check=True,
        timeout=60,
        env={**os.environ, "PATH": os.environ.get("PATH", "/usr/bin")},
    )
    seen = re.findall(r'execve\("([^"]+)", .*\) = -1 (E[A-Z]+)', log.read_text())
    t = trace(command)
    assert t.returncode == 0, t.stderr
    traced = [(e["filename"], e["errno"]) for e in t.of_type("exec") if e["errno"] is not None]
    assert seen == traced == [*expected_misses(scratch), NOT_FOUND]
