"""Hostile strings, traced live: nothing a process names itself reaches the terminal raw.

Each case puts one byte string into a process's comm (prctl PR_SET_NAME),
its argv and the file name it execs (tests/workloads/hostile_names.py). Then:

* the pretty stream, coloured (`--color always`), contains no escape sequence
  but proctrace's own colour codes, no control character, no C1 or bidi
  character, and one event per line; the value is shown escaped, and markup
  is shown as the characters it is made of;
* `--json` is valid JSON, ASCII, and carries the exact bytes
  (`s.encode("utf-8", "surrogateescape")`), and so does a recording of it;
* the end-of-session views (`--timeline`, `--tree`, `--summary`) obey the same
  rules as the stream.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from proctrace.formats.text import ansi_codes
from proctrace.kernel.program import ARGV_MAX_DEFAULT

from tests.live.conftest import ROOT, WORKLOADS

pytestmark = pytest.mark.live

COMM_MAX = 15  # the kernel keeps this many bytes of a comm

# Every colour sequence the stream renderer may emit, and nothing else.
OWN_SGR = sorted({code for pair in ansi_codes().values() for code in pair if code}, key=len, reverse=True)
# The views colour through rich, which combines attributes ("\x1b[1;31m"): any SGR.
ANY_SGR = re.compile(r"\x1b\[[0-9;]*m")
TIMESTAMP = re.compile(r"\d\d:\d\d:\d\d\.\d{6} ")

# What must never reach a terminal from a traced process: C0 controls (a line
# feed only as proctrace's own line end), DEL, C1 controls, bidi controls and
# Unicode line/paragraph separators.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Case:
    value: bytes
    shown: str  # how the value must look, escaped
    comm_shown: str | None = None  # how its first 15 bytes look, when they differ
    channels: frozenset[str] = frozenset({"comm", "argv", "file"})

    @property
    def comm(self) -> bytes:
        return self.value[:COMM_MAX]

    @property
    def comm_text(self) -> str:
        return self.comm_shown if self.comm_shown is not None else self.shown


LONG_ARG = (b"\x1b[2J\xff" * (100 * 1024 // 5 + 1))[: 100 * 1024]

CASES = {
    "csi_clear_screen": Case(b"\x1b[2J", r"\x1b[2J"),
    "osc_window_title": Case(b"\x1b]0;owned\x07", r"\x1b]0;owned\x07"),
    "rich_markup": Case(b"[red]x[/]", "[red]x[/]"),
    "rich_link": Case(
        b"[link=http://example.invalid]y[/link]", "[link=http://example.invalid]y[/link]", "[link=http://ex"
    ),
    "carriage_return": Case(b"left\rright", r"left\rright"),
    "newline": Case(b"one\ntwo", r"one\ntwo"),
    "invalid_utf8": Case(b"\xff\xfe", r"\xff\xfe"),
    "bidi_override": Case("abc\u202edcba".encode(), r"abc\u202edcba"),
    "c1_csi_character": Case("\u009b31m".encode(), r"\u009b31m"),
    "c1_csi_raw_byte": Case(b"\x9b31m", r"\x9b31m"),
    "line_separator": Case("a\u2028b".encode(), r"a\u2028b"),
    # 24 bytes: the kernel's cut at 15 falls inside the sixth "é" (c3 a9).
    "comm_cut_at_15_bytes": Case(b"\x1b[2J" + "é".encode() * 10, r"\x1b[2Jéééééééééé", r"\x1b[2Jééééé\xc3"),
    # Longer than any argument proctrace reads (--argv-max is at most 28 KiB).
    "argument_100k": Case(LONG_ARG, r"\x1b[2J\xff", channels=frozenset({"argv"})),
}


def run_workload(tmp_path: Path, case: Case, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """proctrace OPTIONS -o FILE -- hostile_names.py ...; returns the run and FILE."""
    value_file = tmp_path / "value"
    value_file.write_bytes(case.value)
    flags = [f"--{ch}" for ch in ("comm", "argv") if ch in case.channels]
    if "file" in case.channels:
        flags += ["--file", str(tmp_path / "bin")]
    out = tmp_path / "out"
    workload = [sys.executable, str(WORKLOADS / "hostile_names.py"), str(value_file), *flags]
    proc = subprocess.run(
        [sys.executable, "-m", "proctrace", "-o", str(out), *options, "--", *workload],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "500"},  # the views' tables, unwrapped
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc, out


def exec_path(tmp_path: Path, case: Case) -> bytes:
    return os.fsencode(tmp_path / "bin") + b"/" + case.value


def visible_text(raw: bytes, sgr: list[str] | re.Pattern[str]) -> str:
    """The output as a terminal would get it, less the allowed colour codes;
    fails if it is not UTF-8 (a stray byte such as 0x9b is a C1 CSI to some
    terminals) or if anything able to control a terminal is left."""
    text = raw.decode("utf-8")  # strict
    if isinstance(sgr, re.Pattern):
        text = sgr.sub("", text)
    else:
        for code in sgr:
            text = text.replace(code, "")
    esc = text.find("\x1b")
    assert esc < 0, f"an escape sequence that is not a colour: {text[max(esc - 60, 0) :][:120]!r}"
    bad = RAW_CONTROL.search(text)
    assert bad is None, f"raw control {bad.group()!r} in {text[max(bad.start() - 60, 0) :][:120]!r}"
    return text


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_pretty_stream_shows_hostile_strings_escaped(tmp_path, case):
    _, out = run_workload(tmp_path, case, "--color", "always")
    text = visible_text(out.read_bytes(), OWN_SGR)
    lines = text.split("\n")
    assert lines[-1] == "" and lines[0].startswith("TIME ")
    for line in lines[1:-1]:
        assert TIMESTAMP.match(line), f"a line that is not an event: {line[:120]!r}"
    if "comm" in case.channels:
        (killed,) = [ln for ln in lines if " signal " in ln and "SIGTERM -> " in ln]
        assert f"({case.comm_text})" in killed, killed
        assert all(case.comm_text in ln for ln in lines if " exit " in ln and "killed by SIGTERM" in ln)
    if "argv" in case.channels:
        execs = [ln for ln in lines if " exec " in ln and "hostile_names.py" not in ln]
        assert len(execs) == 1 and case.shown in execs[0], execs
        if case is CASES["argument_100k"]:
            assert "…(+" in execs[0] or "…(truncated)" in execs[0], "a cut value says so"
    if "file" in case.channels:
        (ex,) = [ln for ln in lines if " exec " in ln and "hostile_names.py" not in ln]
        assert os.fsdecode(tmp_path / "bin") + "/" + case.shown in ex, ex


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_json_carries_hostile_strings_exactly(tmp_path, case):
    rec = tmp_path / "session.rec"
    _, out = run_workload(tmp_path, case, "--json", "-w", str(rec))
    raw = out.read_bytes()
    assert raw.isascii()
    events = [json.loads(line) for line in raw.decode("ascii").splitlines()]

    def exact(s: str) -> bytes:
        return s.encode("utf-8", "surrogateescape")

    workload = events[0]
    assert workload["type"] == "exec" and workload["argv"][1].endswith("hostile_names.py")
    forks = [e for e in events if e["type"] == "fork" and e["tgid"] == workload["tgid"]]
    if "comm" in case.channels:
        killed = forks[0]["child_pid"]
        assert exact(forks[0]["comm"]) == case.comm
        (sent,) = [e for e in events if e["type"] == "signal" and e["stage"] == "generate" and e["signo"] == 15]
        assert sent["target_pid"] == killed
        assert exact(sent["target_comm"]) == case.comm and exact(sent["comm"]) == case.comm
        (died,) = [e for e in events if e["type"] == "exit" and e["pid"] == killed]
        assert exact(died["comm"]) == case.comm and died["signal"] == "SIGTERM"
        (reaped,) = [e for e in events if e["type"] == "reap" and e["reaped_pid"] == killed]
        assert exact(reaped["comm"]) == case.comm
    (ex,) = [e for e in events if e["type"] == "exec" and e["pid"] != workload["pid"]]
    if "argv" in case.channels:
        argv = [exact(a) for a in ex["argv"]]
        if case is CASES["argument_100k"]:
            assert ex["argv_truncated"] is True
            shown = b"\0".join(argv)
            assert len(shown) == ARGV_MAX_DEFAULT and (case.value + b"\0" + case.value).startswith(shown)
        else:
            assert argv == [case.value, case.value] and ex["argv_truncated"] is False
    if "file" in case.channels:
        assert exact(ex["filename"]) == exec_path(tmp_path, case)
        assert exact(ex["comm"]) == os.path.basename(exec_path(tmp_path, case))[:COMM_MAX]

    replay = subprocess.run(
        [sys.executable, "-m", "proctrace", "-r", str(rec), "--json"], cwd=ROOT, capture_output=True, timeout=60
    )
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == raw, "the recording carries the same bytes as the live stream"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_views_show_hostile_strings_escaped(tmp_path, case):
    _, out = run_workload(tmp_path, case, "--timeline", "--tree", "--summary", "--color", "always")
    text = visible_text(out.read_bytes(), ANY_SGR)
    lines = text.split("\n")
    (summary_at,) = [i for i, ln in enumerate(lines) if re.match(r"\d+ processes: ", ln)]
    timeline, summary = lines[:summary_at], lines[summary_at:]
    tree = [ln for ln in timeline if "── " in ln]  # a child's line in the tree
    if "comm" in case.channels:
        assert any(ln.endswith(f"  renamed itself {case.comm_text}") for ln in timeline), "timeline"
        assert any(case.comm_text in ln for ln in summary), "summary"
    if "argv" in case.channels:
        assert any(ln.lstrip().startswith("+") and "exec " in ln and case.shown in ln for ln in timeline)
        assert any(case.shown in ln for ln in tree), "tree"
    if "file" in case.channels:
        path = os.fsdecode(tmp_path / "bin") + "/" + case.shown
        assert any(f"exec {path}" in ln or f"exec $'{path}" in ln or f"exec '{path}" in ln for ln in timeline)


# --------------------------------------------------------------------------- no shell


def test_command_runs_directly_without_a_shell(trace):
    t = trace(["/bin/echo", "a;b"])
    assert t.returncode == 0, t.stderr
    assert t.stdout == "a;b\n"
    first = t.events[0]
    assert first["type"] == "exec"
    assert (first["filename"], first["argv"]) == ("/bin/echo", ["/bin/echo", "a;b"])
    assert [e["filename"] for e in t.of_type("exec")] == ["/bin/echo"], "nothing else was exec'd"


def test_command_name_with_shell_syntax_is_a_file_name(tmp_path):
    planted = tmp_path / "planted"
    run = subprocess.run(
        [sys.executable, "-m", "proctrace", "--", f"true; touch {planted}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 127, run.stderr
    assert "no such file" in run.stderr  # the whole string was taken as one path
    assert not planted.exists()


# --------------------------------------------------------------------------- proctrace's own messages

OSC_NAME = "x\x1b]0;owned\x07y"  # a file name that would retitle the terminal


def own_message_cases(tmp_path: Path) -> dict[str, list[str]]:
    hostile = tmp_path / OSC_NAME
    return {
        "command_not_found": ["--", str(tmp_path / "missing" / OSC_NAME)],
        "tracing_started": ["-o", os.devnull, "--", str(hostile)],
        "recording_unreadable": ["-r", str(tmp_path / "missing" / OSC_NAME)],
        "recording_not_creatable": ["-w", str(tmp_path / "missing" / OSC_NAME), "-q", "--", "/bin/true"],
    }


@pytest.mark.parametrize("situation", ["command_not_found", "tracing_started", "recording_unreadable",
                                       "recording_not_creatable"])  # fmt: skip
def test_own_messages_escape_a_hostile_file_name(tmp_path, situation):
    shutil.copy("/bin/true", tmp_path / OSC_NAME)
    run = subprocess.run(
        [sys.executable, "-m", "proctrace", *own_message_cases(tmp_path)[situation]],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    err = run.stderr.decode("utf-8", "surrogateescape")
    assert "Traceback" not in err
    assert "\x1b" not in err and "\x07" not in err, f"raw control bytes on stderr: {err!r}"
    assert r"x\x1b]0;owned\x07y" in err, f"the message names the file, escaped: {err!r}"
