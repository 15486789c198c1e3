"""The command line's contract for bad input: a clear message, a non-zero exit,
never a traceback. None of these needs root: they fail before tracing, or read
recordings."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def proctrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


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
        (["-q"], "needs -w"),
        (["--bogus"], "unrecognized arguments"),
        (["-r", "x.rec", "--", "true"], "cannot also run a command"),
        (["--"], "no command after --"),
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
