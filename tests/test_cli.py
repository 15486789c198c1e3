"""The command line's contract for bad input: a clear message, a non-zero exit,
never a traceback; and each failure of a session mapped to its exit code. None
of these needs root: they fail before tracing, read recordings, or replace the
session with a stand-in."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from proctrace import cli
from proctrace.formats.recording import RecordingError
from proctrace.kernel.prereqs import PrereqError
from proctrace.kernel.probe import ProbeError
from proctrace.model.filters import FilterError
from proctrace.session.command import CommandError
from proctrace.session.loop import SessionResult
from proctrace.session.options import RedactionOptions, SessionOptions

ROOT = Path(__file__).resolve().parents[1]


def proctrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctrace", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "abc"], "not a process id"),
        (["-e", "exec,bogus"], "unknown event kind bogus"),
        (["-c", "a(", "--regex"], "invalid regular expression"),
        (["--buffer", "disk"], "invalid choice"),
        (["--buffer-size", "lots"], "not a size"),
        (["--buffer-size", "8G"], "at most 1024M"),
        (["--argv-max", "10"], "between 64 and"),
        (["--signal-rate", "many"], "not a number of signals a second"),
        (["--signal-rate", "-5"], "between 0 (no limit) and"),
        (["--signal-buffer-size", "0"], "size must be positive"),
        (["-q"], "needs -w"),
        (["--bogus"], "unrecognized arguments"),
        (["-r", "x.rec", "--", "true"], "cannot also run a command"),
        (["--"], "no command after --"),
        (["--redact", "("], "invalid --redact pattern '('"),
        (["-r", "x.rec", "--redact", "a[b"], "invalid --redact pattern"),
        (["-r", "x.rec", "--env"], "a recording has them or not"),
        (["--no-redact", "--redact", "sess"], "give one or the other"),
        (["--env-allow", "A=B"], "not a variable name"),
        (["--env-allow", ""], "not a variable name"),
        (["--env", "--argv-max", "28K"], "--argv-max at most"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = proctrace(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_flag():
    result = proctrace("--help")
    assert result.returncode == 0
    for flag in (
        "--json",
        "-o",
        "-w",
        "-r",
        "-q",
        "--force",
        "-c",
        "-f",
        "-p",
        "-u",
        "-e",
        "-C",
        "--no-threads",
        "--timeline",
        "--tree",
        "--summary",
        "--buffer",
        "--argv-max",
        "--signal-rate",
        "--signal-buffer-size",
        "--all-signals",
        "--doctor",
        "--as-root",
    ):
        assert flag in result.stdout, flag


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.rec", b"", "empty"),
        ("garbage.rec", b"hello world\n", "line 1"),
        ("binary.rec", bytes(range(256)) * 4, "binary.rec"),
        ("other.rec", b'{"type": "header", "format": "something-else", "version": 1}\n', "not a proctrace recording"),
        ("future.rec", b'{"type":"header","format":"proctrace-recording","version":99}\n', "newer"),
        ("fake.rec.gz", b"not gzip at all\n", "fake.rec.gz"),
    ],
)
def test_bad_recordings_exit_2_naming_the_file(tmp_path, name, data, message):
    path = write(tmp_path / name, data)
    result = proctrace("-r", str(path))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr or name in result.stderr
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_missing_recording_is_a_clear_error(tmp_path):
    result = proctrace("-r", str(tmp_path / "nope.rec"))
    assert result.returncode == 2
    assert "nope.rec" in result.stderr and "Traceback" not in result.stderr


def test_gzip_recording_cut_mid_record_reads_what_came_before(tmp_path):
    header = (
        b'{"type":"header","format":"proctrace-recording","version":1,"proctrace_version":"0.1.0",'
        b'"hostname":"h","kernel":"k","boot_offset_ns":0,"boot_time":"1970-01-01T00:00:00.000000Z",'
        b'"buffer":"ring","options":{},"started":"1970-01-01T00:00:00.000000Z","snapshot":[]}\n'
    )
    event = (
        b'{"type":"exit","ts_ns":5,"time":"1970-01-01T00:00:00.000000Z","pid":2,"tgid":2,"ppid":1,"comm":"x",'
        b'"uid":0,"start_ns":1,"cpu":0,"exit_code":3,"signal":null,"core_dumped":false,"status":768,'
        b'"process_exit":true,"lifetime_ns":4}\n'
    )
    path = write(tmp_path / "cut.rec.gz", gzip.compress(header + event + event[:40]))
    result = proctrace("-r", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert '"exit_code":3' in result.stdout
    assert "warning" in result.stderr


# --- errors to exit codes, in process -------------------------------------------------


def session_that(outcome: SessionResult | BaseException):
    def run_session(options: SessionOptions) -> SessionResult:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return run_session


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CommandError("nope: command not found"), 127),
        (FilterError("unknown event kind bogus"), 2),
        (RecordingError("s.rec exists; use --force to overwrite it"), 2),
        (PrereqError("proctrace needs root."), 1),
        (ProbeError("the BPF program did not load: x"), 1),
        (KeyboardInterrupt(), 128 + signal.SIGINT),
    ],
)
def test_each_failure_of_a_session_has_its_exit_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException, code: int
) -> None:
    monkeypatch.setattr(cli, "run_session", session_that(error))
    assert cli.main(["--json"]) == code
    err = capsys.readouterr().err
    if not isinstance(error, KeyboardInterrupt):
        assert err == f"proctrace: {error}\n"


def test_a_session_that_detached_in_the_background_ends_without_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", exits.append)  # instead of ending the test run
    monkeypatch.setattr(cli, "run_session", session_that(SessionResult(3, leave_without_cleanup=True)))
    cli.main(["--json"])
    assert exits == [3]


def test_a_session_that_detached_nothing_returns_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", exits.append)
    monkeypatch.setattr(cli, "run_session", session_that(SessionResult(0)))
    assert cli.main(["-r", "s.rec"]) == 0
    assert exits == []


def test_the_session_gets_the_options_and_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[SessionOptions] = []

    def run_session(options: SessionOptions) -> SessionResult:
        given.append(options)
        return SessionResult(0)

    monkeypatch.setattr(cli, "run_session", run_session)
    cli.main(["--json", "-c", "make", "--", "make", "-j2"])
    (options,) = given
    assert options.outputs.json and options.filters.comms == ("make",)
    assert options.command == ("make", "-j2")
    assert not options.transport.env
    assert options.redaction == RedactionOptions(enabled=True, patterns=(), env_allow=None)


@pytest.mark.parametrize(
    ("args", "env", "redaction"),
    [
        (["--env"], True, RedactionOptions()),
        (["--env-allow", "PATH", "--env-allow", "LANG", "--env-allow", "PATH"], True,
         RedactionOptions(env_allow=("PATH", "LANG"))),
        (["--redact", "^sess", "--redact", "ticket"], False, RedactionOptions(patterns=("^sess", "ticket"))),
        (["--env", "--no-redact"], True, RedactionOptions(enabled=False)),
        # A recording has an environment or not: nothing to ask the kernel for.
        (["-r", "s.rec", "--env-allow", "HOME"], False, RedactionOptions(env_allow=("HOME",))),
    ],
)  # fmt: skip
def test_the_session_gets_the_environment_and_redaction_options(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: bool, redaction: RedactionOptions
) -> None:
    given: list[SessionOptions] = []
    monkeypatch.setattr(cli, "run_session", lambda options: given.append(options) or SessionResult(0))
    assert cli.main(args) == 0
    (options,) = given
    assert (options.transport.env, options.redaction) == (env, redaction)


def test_help_says_what_the_redaction_flags_do() -> None:
    text = cli.build_parser().format_help()
    for flag in ("--env ", "--env-allow NAME", "--redact PATTERN", "--no-redact"):
        assert flag in text


@pytest.mark.parametrize("args", [["--doctor"], ["--help"]])
def test_a_reader_that_went_away_ends_the_output_quietly(args: list[str]) -> None:
    """`proctrace --doctor | head -1`: the pipe's reader is gone before the
    output is written; that ends proctrace as it ends cat, with no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "proctrace", *args], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in run.stderr
    assert b"BrokenPipeError" not in run.stderr
