"""Redaction end to end on replay: a recording written with redaction off, full
of secrets in argv, the snapshot and the environment, read back through every
output. No secret may reach any of them, while the text around each secret and
everything that is not secret stays; `--no-redact` (the control) shows them all,
so the recording really holds what the test looks for."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from proctrace.formats.jsonl import event_json
from proctrace.formats.recording import RecordingWriter, make_header, open_recording
from proctrace.model.clock import Clock
from proctrace.model.context import ProcessContext
from proctrace.model.filters import FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.model.redact import Redactor

from tests.synthetic import INIT, MS, SHELL, SHELL_START, execve, exit_, fork, reap

ROOT = Path(__file__).resolve().parents[1]
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * 1_000_000_000)

# Each secret is distinct, so a leak says which rule let it through.
ARGV_SECRETS = {
    "eq": "s3cret-eq-7f3a",
    "next": "s3cret-next-91bc",
    "url": "s3cret-url-22de",
    "shell": "s3cret-shell-5e10",
    "snapshot": "s3cret-snapshot-c0de",
}
ENV_SECRET = "s3cret-env-4b4b"
ENV_URL_SECRET = "s3cret-envurl-a11a"

DEPLOY_ARGV = [
    b"deploy",
    b"--password=" + ARGV_SECRETS["eq"].encode(),
    b"--token",
    ARGV_SECRETS["next"].encode(),
    b"https://ci:" + ARGV_SECRETS["url"].encode() + b"@git.example.com/app.git",
    b"--region=eu-west-1",
]
SHELL_ARGV = [b"sh", b"-c", b"MY_API_TOKEN=" + ARGV_SECRETS["shell"].encode() + b" ./deploy --dry-run"]
SNAPSHOT = [
    ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START),
    ProcInfo(150, INIT, 0, b"vault", [b"vault", b"agent", b"--token=" + ARGV_SECRETS["snapshot"].encode()], 1 * MS),
]
ENV = {
    b"HOME": b"/home/ci",
    b"MY_API_TOKEN": ENV_SECRET.encode(),
    b"DATABASE_URL": b"postgres://app:" + ENV_URL_SECRET.encode() + b"@db/app",
    b"PWD": b"/srv/app",
}

OUTPUTS = {
    "json": ["--json"],
    "stream": ["--color", "never"],
    "tree": ["--tree"],
    "timeline": ["--timeline"],
    "timeline-json": ["--timeline", "--json"],
    "summary": ["--summary"],
}


def events() -> list:
    deploy = execve(12 * MS, 201, 11 * MS, DEPLOY_ARGV, ppid=200)
    deploy.context = ProcessContext(cwd=b"/srv/app", env=dict(ENV))
    return [
        fork(10 * MS, 200),
        execve(10 * MS + 500, 200, 10 * MS, SHELL_ARGV),
        fork(11 * MS, 201, by=200, start=10 * MS, ppid=SHELL),
        deploy,
        exit_(13 * MS, 201, 11 * MS, ppid=200, comm=b"deploy"),
        exit_(14 * MS, 200, 10 * MS),
        reap(15 * MS, 200),
    ]


def exec_line(ev) -> str:
    """An event as the recording holds it: the --json line, and for an exec with a
    context its fields beside the others (ProcessContext.to_dict), as the
    recording of a session with --env has them."""
    line = event_json(ev, CLOCK)
    if getattr(ev, "context", None) is None:
        return line
    return json.dumps({**json.loads(line), **ev.context.to_dict()}, ensure_ascii=True, separators=(",", ":"))


def write_unredacted(path: Path) -> Path:
    options = {"filters": FilterSpec().as_dict(), "command_pid": None, "redaction": Redactor(False).describe()}
    header = make_header(CLOCK, "ring", options, SNAPSHOT)
    RecordingWriter.create(str(path), header, force=False).close("the command ended")
    lines = path.read_text().splitlines()
    # Written by hand between header and trailer: the writer redacts nothing,
    # but these lines must carry the environment whatever the encoder writes.
    body = [exec_line(ev) for ev in events()]
    path.write_text("\n".join([lines[0], *body, lines[-1].replace('"events":0', f'"events":{len(body)}')]) + "\n")
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_unredacted(tmp_path_factory.mktemp("redaction") / "secrets.rec")


def proctrace(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "proctrace", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TZ": "UTC", "COLUMNS": "200", "LANG": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr
    return result


def every_output(recording: Path, tmp: Path, *extra: str) -> dict[str, str]:
    """What each output of a replay of `recording` shows, by name."""
    shown = {}
    for name, args in OUTPUTS.items():
        result = proctrace("-r", str(recording), *args, *extra)
        shown[name] = result.stdout + result.stderr
    export = tmp / "trace.json"
    result = proctrace("-r", str(recording), "--export-trace", str(export), "--force", "--color", "never", *extra)
    shown["export-trace"] = export.read_text() + result.stdout + result.stderr
    copy = tmp / "copy.rec.gz"
    proctrace("-r", str(recording), "-q", "-w", str(copy), "--force", *extra)
    shown["rerecording"] = gzip.decompress(copy.read_bytes()).decode()
    shown["rerecording-replayed"] = proctrace("-r", str(copy), "--json", "--no-redact").stdout
    return shown


def test_no_argv_secret_reaches_any_output(recording: Path, tmp_path: Path) -> None:
    for name, text in every_output(recording, tmp_path).items():
        for rule, secret in ARGV_SECRETS.items():
            if name in ("json", "stream") and rule == "snapshot":
                continue  # the stream shows events, not the snapshot
            assert secret not in text, f"{rule} secret in {name}"
        # The text around each secret stays, so the line is still readable.
        for kept in ("--password=<redacted>", "MY_API_TOKEN=<redacted> ./deploy --dry-run"):
            assert kept in text, f"{kept!r} missing from {name}"
        if name != "summary":  # which cuts long command lines
            for kept in ("--region=eu-west-1", "ci:<redacted>@git.example.com/app.git"):
                assert kept in text, f"{kept!r} missing from {name}"


def test_the_control_without_redaction_shows_every_secret(recording: Path, tmp_path: Path) -> None:
    """Replayed with --no-redact, the same outputs hold the secrets: the test
    above would see a leak."""
    shown = every_output(recording, tmp_path, "--no-redact")
    assert set(shown) == {*OUTPUTS, "export-trace", "rerecording", "rerecording-replayed"}
    for name, text in shown.items():
        for rule in ("eq", "next", "shell") if name == "summary" else ("eq", "next", "url", "shell"):
            assert ARGV_SECRETS[rule] in text, f"{rule} secret not in {name}"
    # The snapshot's processes are in the views of the whole tree and in a copy's header.
    for name in ("tree", "export-trace", "rerecording"):
        assert ARGV_SECRETS["snapshot"] in shown[name], name


def test_a_redacted_copy_says_so_in_its_header(recording: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.rec"
    proctrace("-r", str(recording), "-q", "-w", str(copy), "--redact", "region")
    header = open_recording(str(copy)).header
    assert header["options"]["redaction"] == {
        "argv": True,
        "env": True,
        "patterns": ["region"],
        "env_allow": None,
    }
    (vault,) = [p for p in header["snapshot"] if p["pid"] == 150]
    assert vault["argv"] == ["vault", "agent", "--token=<redacted>"]
    assert "--region=<redacted>" in copy.read_text()


def test_an_unredacted_copy_of_an_unredacted_recording_says_so(recording: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.rec"
    proctrace("-r", str(recording), "-q", "-w", str(copy), "--no-redact")
    assert open_recording(str(copy)).header["options"]["redaction"]["argv"] is False


def test_no_environment_secret_reaches_any_output(recording: Path, tmp_path: Path) -> None:
    raw = recording.read_text()
    assert ENV_SECRET in raw and ENV_URL_SECRET in raw  # the recording holds them
    shown = every_output(recording, tmp_path)
    for name, text in shown.items():
        assert ENV_SECRET not in text, f"environment secret in {name}"
        assert ENV_URL_SECRET not in text, f"environment URL secret in {name}"
    # What is not secret is still there, in the JSON stream and the copy.
    for name in ("json", "rerecording"):
        event = next(json.loads(line) for line in shown[name].splitlines() if '"deploy"' in line and "exec" in line)
        assert event["env"] == {
            "HOME": "/home/ci",
            "MY_API_TOKEN": "<redacted>",
            "DATABASE_URL": "postgres://app:<redacted>@db/app",
            "PWD": "/srv/app",
        }, name


def test_env_allow_on_replay_keeps_only_the_named_variables(recording: Path) -> None:
    out = proctrace("-r", str(recording), "--json", "--env-allow", "HOME", "--env-allow", "MY_API_TOKEN").stdout
    (deploy,) = [json.loads(line) for line in out.splitlines() if '"filename":"/usr/bin/deploy"' in line]
    assert deploy["env"] == {"HOME": "/home/ci", "MY_API_TOKEN": "<redacted>"}
