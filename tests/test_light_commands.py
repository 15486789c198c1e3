"""`--help`, `--version` and `-r FILE` load nothing that only live tracing
needs: not bcc, not the loader, not the programs' maps. Python's own list of
what a process imported (-X importtime) is the witness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests" / "data" / "golden" / "session.rec"
LIVE_ONLY = ("bcc", "proctrace.kernel.loader", "proctrace.kernel.probe", "proctrace.kernel.bpfsys")
# The packages of --metrics and --otlp: only a session given the option imports them.
EXPORT_ONLY = ("prometheus_client", "opentelemetry", "google")


def imported(*args: str) -> set[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "proctrace", *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("-r", str(RECORDING), "-o", os.devnull)])
def test_a_command_that_traces_nothing_imports_nothing_of_live_tracing(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    assert "proctrace.cli" in modules  # the witness works
    assert not {m for m in modules if m in LIVE_ONLY or m.startswith("bcc.")}
    assert not {m for m in modules if m.split(".")[0] in EXPORT_ONLY}


def test_the_export_packages_are_imported_when_their_option_is_given() -> None:
    """The witness of the check above: the same replay with --metrics imports
    prometheus-client; with --otlp, which writes its own protobuf, nothing of them
    (to a port nothing listens on: the drop is reported, the exit stays 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    modules = imported("-r", str(RECORDING), "-o", os.devnull, "--metrics", f"127.0.0.1:{port}")
    assert "prometheus_client" in modules
    modules = imported("-r", str(RECORDING), "-o", os.devnull, "--otlp", "http://127.0.0.1:9")
    assert "proctrace.export.otlp_wire" in modules
    assert not {m for m in modules if m.split(".")[0] in EXPORT_ONLY}
