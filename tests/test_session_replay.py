"""A replayed session (tracer/session/replay.py): a recording read back through
the same loop, filters, sinks and views as live, with what it hands back to the
command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from proctrace.formats import recording as recording_module
from proctrace.formats.jsonl import event_json, lost_json
from proctrace.formats.recording import LostRecord, Recording, RecordingWriter, make_header, open_recording
from proctrace.model.clock import Clock
from proctrace.model.events import Event, ExecEvent
from proctrace.model.filters import FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session.loop import Tick
from proctrace.session.options import OutputOptions, SessionOptions
from proctrace.session.outputs import SessionOutputs
from proctrace.session.replay import ReplaySource, replay

from tests.synthetic import INIT, MS, SHELL, SHELL_START, execve, exit_, exited, fork, reap

SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)
SNAPSHOT = [ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START)]
FIRST: list[Event] = [fork(10 * MS, 200), execve(11 * MS, 200, 10 * MS, [b"make"])]
SECOND: list[Event] = [exit_(12 * MS, 200, 10 * MS, exited(2), comm=b"make"), reap(13 * MS, 200, exited(2))]
LOST = LostRecord(11 * MS + 500, 4, 4)


def record(path: Path, *, trailer: bool = True, command_pid: int | None = SHELL) -> Path:
    header = make_header(CLOCK, "ring", {"filters": FilterSpec().as_dict(), "command_pid": command_pid}, SNAPSHOT)
    writer = RecordingWriter.create(str(path), header, force=False)
    writer.write(FIRST)
    writer.lost(LOST.ts_ns, LOST.count, LOST.total)
    writer.write(SECOND)
    writer.close("the command ended")
    if not trailer:  # as if the tracer had been killed
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:-1]))
    return path


def replay_options(recording: Path, spec: FilterSpec | None = None, **outputs: Any) -> SessionOptions:
    return SessionOptions(outputs=OutputOptions(**outputs), filters=spec or FilterSpec(), read_path=str(recording))


def test_the_replay_source_yields_the_file_in_order_with_a_reader_check_after_each_batch(tmp_path: Path) -> None:
    source = ReplaySource(open_recording(str(record(tmp_path / "s.rec"))))
    records = list(source.records(shows_status=True))
    assert records == [FIRST, Tick(None), LOST, SECOND, Tick(None)]


def test_a_replay_streams_the_recorded_events_as_json(tmp_path: Path) -> None:
    rec, out = record(tmp_path / "s.rec"), tmp_path / "out.jsonl"
    result = replay(str(rec), replay_options(rec, json=True, output_path=str(out)))
    lines = out.read_text().splitlines()
    assert lines[:2] == [event_json(ev, CLOCK) for ev in FIRST]
    assert lines[2] + "\n" == lost_json(LOST.ts_ns, LOST.count, LOST.total, CLOCK)
    assert lines[3:] == [event_json(ev, CLOCK) for ev in SECOND]
    assert (result.exit_code, result.leave_without_cleanup) == (0, False)


def test_a_replay_applies_the_filters_given_now(tmp_path: Path) -> None:
    rec, out = record(tmp_path / "s.rec"), tmp_path / "out.jsonl"
    replay(str(rec), replay_options(rec, FilterSpec(kinds=frozenset({"exit"})), json=True, output_path=str(out)))
    assert [json.loads(line)["type"] for line in out.read_text().splitlines()] == ["lost", "exit"]


def test_a_filtered_copy_says_which_filters_made_it_and_why_it_ended(tmp_path: Path) -> None:
    rec, copy = record(tmp_path / "s.rec"), tmp_path / "copy.rec"
    spec = FilterSpec(kinds=frozenset({"exec"}))
    replay(str(rec), replay_options(rec, spec, quiet=True, record_path=str(copy)))
    copied = open_recording(str(copy))
    assert [ev for batch in copied.events() for ev in batch] == [FIRST[1]]
    assert copied.header["options"] == {
        "filters": spec.as_dict(),
        "command_pid": SHELL,
        # The original predates redaction in headers: the copy has what the replay applied.
        "redaction": {"argv": True, "env": True, "patterns": [], "env_allow": None},
    }
    assert copied.trailer is not None and copied.trailer["reason"] == "replayed"


def test_the_views_of_a_replay_are_rooted_at_the_recorded_command(tmp_path: Path) -> None:
    rec, out = record(tmp_path / "s.rec"), tmp_path / "tree.txt"
    replay(str(rec), replay_options(rec, tree=True, color="never", output_path=str(out)))
    assert out.read_text().splitlines()[0].startswith(f"{SHELL} sh")


def test_a_replay_warns_of_a_recording_cut_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = record(tmp_path / "s.rec", trailer=False)
    replay(str(rec), replay_options(rec, json=True, output_path=str(tmp_path / "out.jsonl")))
    assert capsys.readouterr().err.startswith("proctrace: warning: ")


def test_a_replay_checks_the_reader_after_every_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec, out = record(tmp_path / "s.rec"), tmp_path / "out.jsonl"
    monkeypatch.setattr(SessionOutputs, "reader_gone", lambda self: True)
    with pytest.raises(BrokenPipeError):
        replay(str(rec), replay_options(rec, json=True, output_path=str(out)))
    assert out.read_text().splitlines() == [event_json(ev, CLOCK) for ev in FIRST]  # and nothing after


GOLDEN = Path(__file__).parent / "data" / "golden" / "session.rec"
GOLDEN_COMMAND = 13281  # the recorded `-- python3 workload.py`
GOLDEN_SH = 13284  # its child `sh -c '/bin/true; exit 0'`, parent of 13285


def tree_pids(text: str) -> list[int]:
    """The pid that starts each process's line of --tree (a long line wraps onto a
    continuation line, which starts with no pid and a name)."""
    return [int(m.group(1)) for m in re.finditer(r"^[│├└─ ]*(\d+) \S", text, re.MULTILINE)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # The filter kept the command: its tree, as always.
        (FilterSpec(), None),
        # The filter left the command out: what it kept, not nothing.
        (FilterSpec(pids=(GOLDEN_SH,), follow=True), [GOLDEN_SH, GOLDEN_SH + 1]),
        (FilterSpec(comms=("true",)), [13282, GOLDEN_SH + 1]),
    ],
)
def test_views_of_a_command_session_show_what_the_filter_kept_even_without_the_command(
    tmp_path: Path, spec: FilterSpec, expected: list[int] | None
) -> None:
    out = tmp_path / "tree.txt"
    options = SessionOptions(
        outputs=OutputOptions(tree=True, color="never", output_path=str(out)), filters=spec, read_path=str(GOLDEN)
    )
    replay(str(GOLDEN), options)
    pids = tree_pids(out.read_text())
    if expected is None:
        assert pids[0] == GOLDEN_COMMAND and GOLDEN_SH in pids
    else:
        assert pids == expected


# --- PATH searches: trusted as recorded, decided for a recording without them ----------

CC, CC_START = 210, 20 * MS - 5_000


def cc_search(t0: int) -> list[Event]:
    """210 misses `as` in two directories of PATH and finds it in the third."""
    return [
        fork(t0, CC),
        execve(t0 + 10_000, CC, CC_START, [b"as"], errno=2, filename=b"/usr/local/bin/as", comm=b"cc"),
        execve(t0 + 15_000, CC, CC_START, [b"as"], errno=2, filename=b"/root/.cargo/bin/as", comm=b"cc"),
        execve(t0 + 90_000, CC, CC_START, [b"as"], filename=b"/usr/bin/as"),
        exit_(t0 + 1 * MS, CC, CC_START, comm=b"as"),
    ]


def record_batches(path: Path, batches: list[list[Event]], *, before_path_search: bool) -> Path:
    """A recording of `batches`; `before_path_search`: as an earlier proctrace
    wrote it, with no path_search in its exec records."""
    header = make_header(CLOCK, "ring", {"filters": FilterSpec().as_dict(), "command_pid": SHELL}, SNAPSHOT)
    writer = RecordingWriter.create(str(path), header, force=False)
    for batch in batches:
        writer.write(batch)
    writer.close("the command ended")
    if before_path_search:
        text = path.read_text()
        assert text.count(',"path_search":false') == 3
        path.write_text(text.replace(',"path_search":false', ""))
    return path


def replayed(path: Path) -> tuple[Recording, list[list[Event]]]:
    recording = open_recording(str(path))
    records = list(ReplaySource(recording).records(shows_status=False))
    return recording, [record for record in records if type(record) is list]


def replayed_flags(path: Path) -> tuple[bool | None, list[bool]]:
    recording, batches = replayed(path)
    events = [ev for batch in batches for ev in batch]
    assert events == sorted(events, key=lambda ev: ev.ts_ns)
    return recording.exec_path_search, [ev.path_search for ev in events if type(ev) is ExecEvent and ev.errno]


def test_a_recording_without_path_search_has_it_decided_on_reading_even_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = cc_search(20 * MS)
    rec = record_batches(tmp_path / "old.rec", [events], before_path_search=True)
    monkeypatch.setattr(recording_module, "READ_CHUNK", 256)  # about a record a block
    recording, batches = replayed(rec)
    assert len(batches) > 1
    replayed_events = [ev for batch in batches for ev in batch]
    assert [(ev.kind, ev.ts_ns) for ev in replayed_events] == [(ev.kind, ev.ts_ns) for ev in events]
    assert recording.exec_path_search is False
    assert [ev.path_search for ev in replayed_events if type(ev) is ExecEvent and ev.errno] == [True, True]


def test_a_recording_with_path_search_is_trusted_as_written(tmp_path: Path) -> None:
    # Written undecided (false) on purpose: the rule would say true, the file wins.
    rec = record_batches(tmp_path / "new.rec", [cc_search(20 * MS)], before_path_search=False)
    assert replayed_flags(rec) == (True, [False, False])


def test_an_old_recording_reads_back_with_misses_folded_and_counted_apart(tmp_path: Path) -> None:
    rec = record_batches(tmp_path / "old.rec", [cc_search(20 * MS)], before_path_search=True)
    out = tmp_path / "summary.txt"
    replay(str(rec), replay_options(rec, summary=True, color="never", output_path=str(out)))
    text = out.read_text()
    assert "0 non-zero exits, 0 deaths by signal, 0 failed execs\n2 PATH misses folded into their execs\n" in text
    stream = tmp_path / "stream.txt"
    replay(str(rec), replay_options(rec, color="never", output_path=str(stream)))
    execs = [line for line in stream.read_text().splitlines() if " exec " in line]
    assert len(execs) == 1 and execs[0].endswith("/usr/bin/as as (after 2 PATH misses)")
    copy = tmp_path / "copy.rec"
    replay(str(rec), replay_options(rec, quiet=True, record_path=str(copy)))
    assert replayed_flags(copy) == (True, [True, True])  # a copy carries what was decided
