"""Run the real proctrace command line against workloads it starts itself.

Every live test uses run-a-command mode, so it sees only the processes it
started: other processes on the machine never enter its results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proctrace.bench import package_file

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "tests" / "workloads"


@dataclass
class Trace:
    events: list[dict[str, Any]]
    returncode: int
    stderr: str
    stdout: str

    def of_type(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]

    def execs_of(self, filename_suffix: str) -> list[dict[str, Any]]:
        return [e for e in self.of_type("exec") if e["filename"].endswith(filename_suffix)]

    def process_exit(self, tgid: int) -> dict[str, Any]:
        exits = self.of_type("exit", tgid=tgid, process_exit=True)
        assert len(exits) == 1, f"expected one process exit for {tgid}, got {exits}"
        return exits[0]


def run_proctrace(
    tmp_path: Path, command: list[str], *options: str, env: dict[str, str] | None = None, timeout: float = 60
) -> Trace:
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "proctrace", "--json", "-o", str(out), *options, "--", *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = out.read_text().splitlines() if out.exists() else []
    return Trace([json.loads(line) for line in lines], proc.returncode, proc.stderr, proc.stdout)


@pytest.fixture
def trace(tmp_path: Path):
    def _trace(command: list[str], *options: str, **kw: Any) -> Trace:
        return run_proctrace(tmp_path, command, *options, **kw)

    return _trace


class Tracer:
    """A whole-machine proctrace this test started, writing JSON to a file."""

    def __init__(self, out: Path, *options: str) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proctrace", "--json", "-o", str(out), *options],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        ready = self.proc.stderr.readline()
        assert "proctrace: tracing" in ready, ready + self.proc.stderr.read()

    def stop(self) -> list[dict[str, Any]]:
        self.proc.send_signal(signal.SIGINT)  # our own tracer, by pid
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()  # the buffered file that readline() used, not the raw pipe
        assert self.proc.wait(timeout=30) == 0, err
        assert ", 0 lost" in err
        return [json.loads(line) for line in self.out.read_text().splitlines()]


def workload(name: str) -> list[str]:
    return [sys.executable, str(WORKLOADS / name)]


@pytest.fixture(scope="session")
def spawner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bench's fork storm (tracer/bench/spawner.c), compiled: its tree's events
    can be counted exactly (proctrace.bench.soak.expected_events)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("the storm needs a C compiler (gcc)")
    work = tmp_path_factory.mktemp("spawner")
    source = work / "spawner.c"
    source.write_bytes(package_file("spawner.c"))
    out = work / "spawner"
    subprocess.run([cc, "-O2", "-o", str(out), str(source)], check=True)
    return out
