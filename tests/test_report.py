"""The HTML report's data and page (tracer/formats/report.py), without a browser:
what is embedded, how it is coded, and that nothing in it can become markup.
tests/test_report_browser.py opens the page in Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from errno import ENOENT
from pathlib import Path
from signal import SIGTERM
from typing import Any

import pytest
from proctrace.cli import main
from proctrace.formats.recording import RecordingError, RecordingWriter, make_header
from proctrace.formats.report import (
    FAILED,
    NO_START,
    ON_CRITICAL_PATH,
    RUNNING,
    SessionInfo,
    embed_json,
    render_html,
    report_data,
    traced_words,
    write_report,
)
from proctrace.formats.views import timeline_lines
from proctrace.formats.words import process_outcome
from proctrace.model.clock import Clock
from proctrace.model.events import LIFECYCLE, SIGNALS, Event
from proctrace.model.process_table import ProcessTable

from tests.synthetic import MS, SHELL, deliver, execve, exit_, exited, fork, generate, killed, reap

US = 1000
T0 = 1_000 * MS
INFO = SessionInfo("host", "6.18.0", "every process", "live", "2026-12-02T10:00:00.000000Z")
HOSTILE = [
    b"sh",
    b"-c",
    b'</script><script>document.title="PWNED"</script>',
    b"<img src=x onerror=alert(1)>",
    b"javascript:alert(1)",
    b"\xe2\x80\xaeevil\xe2\x80\xa8<!--",
]


def starts(n: int) -> int:
    return T0 + n * MS - 10 * US


ORIGIN = starts(1)


def session_events() -> list[Event]:
    """A shell's children: one exits 0 through two execs, one is killed by
    SIGTERM, one fails an exec and exits 1 after a PATH miss, one with hostile
    argv, one still running at the end."""
    return [
        fork(T0 + 1 * MS, 200),
        execve(T0 + 1 * MS + 100 * US, 200, starts(1), [b"sh", b"-c", b"true a"], filename=b"/bin/sh"),
        execve(T0 + 1 * MS + 500 * US, 200, starts(1), [b"true", b"a"]),
        exit_(T0 + 1 * MS + 900 * US, 200, starts(1), comm=b"true"),
        reap(T0 + 2 * MS, 200),
        fork(T0 + 3 * MS, 201),
        execve(T0 + 3 * MS + 100 * US, 201, starts(3), [b"sleep", b"100"]),
        generate(T0 + 4 * MS, 201, SIGTERM),
        deliver(T0 + 4 * MS + 10 * US, 201, starts(3), SIGTERM),
        exit_(T0 + 4 * MS + 20 * US, 201, starts(3), killed(SIGTERM), comm=b"sleep"),
        reap(T0 + 4 * MS + 520 * US, 201),
        fork(T0 + 5 * MS, 202),
        execve(T0 + 5 * MS + 100 * US, 202, starts(5), [b"nope"], errno=ENOENT, filename=b"/nope"),
        execve(T0 + 5 * MS + 200 * US, 202, starts(5), [b"false"]),
        exit_(T0 + 5 * MS + 300 * US, 202, starts(5), exited(1), comm=b"false"),
        reap(T0 + 5 * MS + 400 * US, 202, exited(1)),
        fork(T0 + 7 * MS, 203),
        execve(T0 + 7 * MS + 100 * US, 203, starts(7), HOSTILE, filename=b"/bin/sh"),
        exit_(T0 + 7 * MS + 200 * US, 203, starts(7)),
        reap(T0 + 7 * MS + 300 * US, 203),
        fork(T0 + 8 * MS, 204),
        execve(T0 + 8 * MS + 100 * US, 204, starts(8), [b"sleep", b"1000"]),
        generate(T0 + 20 * MS, 999_999, 0),  # the last event
    ]


def session_table() -> ProcessTable:
    table = ProcessTable()
    table.write(session_events())
    return table


def decoded(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows with their times absolute, decoded as report.js decodes them."""
    cols, strings = data["processes"], data["strings"]
    rows, at = [], 0
    for i, pid in enumerate(cols["pid"]):
        at += cols["start"][i]
        life, t = [], at
        for k in range(cols["life"][i], cols["life"][i + 1]):
            t += data["life"]["t"][k]
            line = data["life"]["line"][k]
            life.append((t, data["roles"][line % data["role_codes"]], strings[line // data["role_codes"]]))
        rows.append(
            {
                "pid": pid,
                "parent": cols["parent"][i],
                "start": at,
                "end": -1 if cols["end"][i] < 0 else at + cols["end"][i],
                "reaped": -1 if cols["reaped"][i] < 0 else at + cols["reaped"][i],
                "cmd": strings[cols["cmd"][i]],
                "outcome": strings[cols["outcome"][i]],
                "flags": cols["flags"][i],
                "execs": [at + t for t in data["execs"]["t"][cols["exec"][i] : cols["exec"][i + 1]]],
                "marks": [strings[m] for m in data["marks"]["text"][cols["mark"][i] : cols["mark"][i + 1]]],
                "life": life,
            }
        )
    return rows


@pytest.fixture
def table() -> ProcessTable:
    return session_table()


@pytest.fixture
def data(table: ProcessTable) -> dict[str, Any]:
    return report_data(table, INFO, {LIFECYCLE: 0, SIGNALS: 0})


def by_pid(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["pid"]: row for row in decoded(data)}


def test_rows_are_in_tree_order_with_parents_as_row_indices(data):
    rows = decoded(data)
    assert [r["pid"] for r in rows] == [SHELL, 200, 201, 202, 203, 204]
    assert rows[0]["parent"] == -1
    assert all(r["parent"] == 0 for r in rows[1:])


def at_us(ts_ns: int) -> int:
    """A time as the report codes it: since the session's start, which is the
    start of its first child (stamped just before the first event, its fork)."""
    return (ts_ns - ORIGIN) // US


def test_times_decode_to_microseconds_since_the_session_start(data):
    rows = by_pid(data)
    assert rows[200]["start"] == 0
    assert rows[201]["start"] == at_us(starts(3))
    assert rows[201]["end"] == at_us(T0 + 4 * MS + 20 * US)
    assert rows[201]["reaped"] == at_us(T0 + 4 * MS + 520 * US)
    assert rows[200]["execs"] == [at_us(T0 + 1 * MS + 100 * US), at_us(T0 + 1 * MS + 500 * US)]
    assert rows[204]["end"] == -1 and rows[204]["reaped"] == -1
    assert data["session"]["duration_us"] == at_us(T0 + 20 * MS)


def test_outcomes_are_the_views_words_and_flags_mark_failures_and_the_running(data, table):
    rows = by_pid(data)
    for rec in table.processes():
        if rec.tgid in (200, 201, 202, 203):
            assert rows[rec.tgid]["outcome"] == process_outcome(rec)[0]
    assert rows[201]["outcome"] == "killed by SIGTERM"
    assert rows[202]["flags"] & FAILED and rows[201]["flags"] & FAILED
    assert not rows[200]["flags"] & FAILED
    assert rows[204]["flags"] & RUNNING and rows[204]["outcome"] == "running"


def test_each_life_is_the_timeline_views_lines(data, table):
    rows = by_pid(data)
    end = table.last_ts
    for rec in table.processes():
        want = [(max(0, at_us(ts)), role, text) for ts, role, text in timeline_lines(table, rec, end)]
        assert rows[rec.tgid]["life"] == want


def test_failures_by_kind_and_signals_are_counted_as_the_summary_counts_them(data):
    counts = data["counts"]
    assert counts["failures"] == {
        "non-zero exit": 1,
        "killed by a signal": 1,
        "killed by the OOM killer": 0,
        "failed exec": 1,
    }
    assert counts["signals_sent"] == 2  # the SIGTERM, and the last event's signal 0 (as --summary counts it)
    assert by_pid(data)[202]["marks"] == ["exec failed: ENOENT /nope"]
    assert by_pid(data)[201]["marks"] == [f"SIGTERM from {SHELL}", "SIGTERM delivered"]
    assert counts["lost_total"] == 0 and counts["lost_words"] is None


def test_a_path_miss_is_not_a_failure():
    table = ProcessTable()
    miss = execve(T0 + 100 * US, 200, starts(0), [b"ls"], errno=ENOENT, filename=b"/usr/local/bin/ls")
    miss.path_search = True
    table.write([fork(T0, 200), miss, execve(T0 + 150 * US, 200, starts(0), [b"ls"], filename=b"/bin/ls")])
    data = report_data(table, INFO, {LIFECYCLE: 0})
    assert data["counts"]["failures"]["failed exec"] == 0
    assert data["counts"]["path_misses"] == "1 PATH miss"
    assert not by_pid(data)[200]["flags"] & FAILED


def test_lost_events_are_counted_and_worded(table):
    data = report_data(table, INFO, {LIFECYCLE: 7, SIGNALS: 2})
    assert data["counts"]["lost_total"] == 9
    assert data["counts"]["lost_words"].startswith("Events lost: 9 (7 lifecycle events, 2 signal events)")
    assert data["counts"]["lost"] == {LIFECYCLE: 7, SIGNALS: 2}


def test_the_critical_path_of_a_single_tree_is_flagged(data):
    assert data["critical_path"] is None  # the shell is still running: its life is not whole
    table = ProcessTable()
    table.write(
        [
            fork(T0, 200),
            fork(T0 + MS, 300, by=200, start=starts(0), ppid=SHELL),
            exit_(T0 + 5 * MS, 300, starts(1), ppid=200),
            exit_(T0 + 6 * MS, 200, starts(0)),
        ]
    )
    data = report_data(table, INFO, {LIFECYCLE: 0}, roots=[200])
    flagged = {row["pid"] for row in decoded(data) if row["flags"] & ON_CRITICAL_PATH}
    assert flagged == {200, 300}
    assert data["critical_path"]["root"] == 0


def test_a_process_with_no_known_start_keeps_the_rows_after_it_right():
    table = ProcessTable()
    table.write([fork(T0, 200), reap(T0 + 2 * MS, 777), exit_(T0 + 3 * MS, 200, starts(0)), reap(T0 + 4 * MS, 200)])
    data = report_data(table, INFO, {LIFECYCLE: 0})
    rows = by_pid(data)
    pids = data["processes"]["pid"]
    assert pids.index(777) < pids.index(200)  # seen only at its reap, start unknown: it sorts first
    assert rows[777]["flags"] & NO_START
    assert not rows[200]["flags"] & NO_START
    assert rows[200]["start"] == 0  # the session's start, as if the row before it were not there
    assert rows[200]["end"] == (T0 + 3 * MS - starts(0)) // US


def test_strings_are_interned_once():
    table = ProcessTable()
    events: list[Event] = []
    for n in range(50):
        pid = 1000 + n
        at = T0 + n * MS
        events += [fork(at, pid), execve(at + 10 * US, pid, at - US, [b"true"]), exit_(at + 50 * US, pid, at - US)]
    table.write(events)
    data = report_data(table, INFO, {LIFECYCLE: 0})
    assert data["strings"].count("exit 0") == 1
    assert data["strings"].count("true") == 1
    assert len(data["processes"]["pid"]) == 51


def test_hostile_argv_is_escaped_text_in_the_data(data):
    cmd = by_pid(data)[203]["cmd"]
    assert "\u202e" not in cmd and "\u2028" not in cmd
    assert "\\u202e" in cmd and "\\u2028" in cmd
    assert "</script>" in cmd  # still the text the process chose, to be shown as text


def test_embedded_json_cannot_close_its_script_element_or_open_a_comment(data):
    page = render_html(data)
    body = re.search(r'<script type="application/json" id="proctrace-data">(.*?)</script>', page, re.S)
    assert body is not None
    embedded = body.group(1)
    for sequence in ("</script", "<script", "<!--", "<img", "\u2028", "\u2029", ">"):
        assert sequence not in embedded.lower()
    assert json.loads(embedded) == json.loads(json.dumps(data))


def test_embed_json_round_trips_every_character_it_escapes():
    value = {"s": "</SCRIPT><!-- & > \u2028\u2029 é"}
    text = embed_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def test_the_page_allows_only_its_own_script_and_style_by_hash(data):
    page = render_html(data)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy
    assert "connect-src" not in policy and "http" not in policy  # nothing remote, not even a fetch
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    for kind, text in (("script-src", scripts[0]), ("style-src", styles[0])):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{kind} 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_script_never_parses_markup():
    script = (Path(__file__).resolve().parents[1] / "tracer/formats/report.js").read_text()
    code = re.sub(r"^\s*//.*$", "", script, flags=re.M)  # the comments may name what the code avoids
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code


def test_the_page_loads_nothing_from_elsewhere(data):
    page = re.sub(r'<script type="application/json".*?</script>', "", render_html(data), flags=re.S)
    assert not re.search(r"\b(src|href)=", page)
    assert not re.search(r"<(link|iframe|object|embed|img)\b", page)


def test_traced_words_quote_the_command():
    assert traced_words(None) == "every process"
    assert traced_words([b"make", b"-j2", b"a b"]) == "make -j2 'a b' and its descendants"


def test_write_report_is_private_and_refuses_to_clobber_or_follow_links(tmp_path, data):
    target = tmp_path / "r.html"
    size = write_report(str(target), False, data)
    assert size == target.stat().st_size > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RecordingError, match="exists"):
        write_report(str(target), False, data)
    write_report(str(target), True, data)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.html"
    link.symlink_to(victim)
    with pytest.raises(RecordingError):
        write_report(str(link), True, data)
    assert victim.read_text() == "keep"


def write_recording(path: Path, events: list[Event]) -> None:
    clock = Clock(0)
    writer = RecordingWriter.create(str(path), make_header(clock, "ring", {}, []), False)
    writer.write(events)
    writer.close("ended")


def test_replay_with_report_writes_the_page_and_keeps_the_stream(tmp_path, capsys):
    rec = tmp_path / "s.rec"
    write_recording(rec, session_events())
    out = tmp_path / "r.html"
    assert main(["-r", str(rec), "--report", str(out), "--tree"]) == 0
    page = out.read_text()
    data = json.loads(re.search(r'id="proctrace-data">(.*?)</script>', page, re.S).group(1))
    assert {200, 201, 202, 203, 204} <= set(data["processes"]["pid"])
    assert data["session"]["source"] == f"recording {rec}"
    assert data["session"]["host"] == os.uname().nodename
    assert "sleep 100" in capsys.readouterr().out  # the tree was printed as asked


def test_report_refuses_an_existing_file_before_reading(tmp_path, capsys):
    rec = tmp_path / "s.rec"
    write_recording(rec, session_events())
    out = tmp_path / "r.html"
    out.write_text("mine")
    assert main(["-r", str(rec), "--report", str(out), "-o", os.devnull]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert out.read_text() == "mine"


def test_a_report_of_several_recordings_names_them_and_holds_their_processes(tmp_path):
    events = session_events()
    first, second = tmp_path / "a.rec", tmp_path / "b.rec"
    write_recording(first, events[:9])  # up to 201's SIGTERM
    write_recording(second, events[9:])  # from its exit on
    out = tmp_path / "r.html"
    assert main(["-r", str(first), "-r", str(second), "--report", str(out), "-o", os.devnull]) == 0
    data = json.loads(re.search(r'id="proctrace-data">(.*?)</script>', out.read_text(), re.S).group(1))
    assert data["session"]["source"] == f"2 recordings: {first}, {second}"
    rows = by_pid(data)
    assert {200, 201, 202, 203, 204} <= set(rows)
    assert rows[201]["outcome"] == "killed by SIGTERM"  # its life ends in the second file


def test_a_report_that_could_not_be_written_is_refused_before_the_session(tmp_path, capsys):
    rec = tmp_path / "s.rec"
    write_recording(rec, session_events())
    missing = tmp_path / "no-such-dir" / "r.html"
    assert main(["-r", str(rec), "--report", str(missing)]) == 2
    err = capsys.readouterr()
    assert f"cannot create {missing}: no such directory" in err.err
    assert err.out == ""  # refused before the replay printed anything


def test_failures_count_the_processes_the_table_let_go(tmp_path):
    table = ProcessTable(keep_finished=1)
    events: list[Event] = []
    for n in range(3):
        pid, at = 300 + n, T0 + n * MS
        events += [fork(at, pid), exit_(at + 100 * US, pid, at - US, exited(2)), reap(at + 200 * US, pid, exited(2))]
    table.write(events)
    data = report_data(table, INFO, {LIFECYCLE: 0})
    assert data["counts"]["left_out"] == 2
    assert data["counts"]["failures"]["non-zero exit"] == 3  # the two let go as well
