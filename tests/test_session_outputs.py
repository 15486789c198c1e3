"""tracer/session/outputs.py: which sinks a session has for which options, and
what it does at its end (close with a reason, the views, the trace export)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
from pathlib import Path

import pytest
from proctrace.formats.recording import RecordingError, RecordingWriter, make_header, open_recording
from proctrace.formats.views import render_summary, render_tree
from proctrace.model.clock import Clock
from proctrace.model.events import Event
from proctrace.model.filters import EventFilter, FilterSpec
from proctrace.model.process_table import ProcessTable
from proctrace.model.procsnap import ProcInfo
from proctrace.session.options import OutputOptions
from proctrace.session.outputs import SessionOutputs, refuse_existing_outputs
from proctrace.session.sinks import JsonSink, PrettySink

from tests.synthetic import INIT, MS, SHELL, SHELL_START, execve, exit_, exited, fork, reap

SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)
SNAPSHOT = [ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START)]
EVENTS: list[Event] = [
    fork(10 * MS, 200),
    execve(11 * MS, 200, 10 * MS, [b"make"]),
    exit_(12 * MS, 200, 10 * MS, exited(2), comm=b"make"),
    reap(13 * MS, 200, exited(2)),
]


def outputs_for(options: OutputOptions, tmp_path: Path, spec: FilterSpec | None = None) -> SessionOutputs:
    header = make_header(CLOCK, "ring", {}, SNAPSHOT) if options.record_path else None
    return SessionOutputs(options, EventFilter(spec or FilterSpec()), CLOCK, SNAPSHOT, header)


def sink_types(outputs: SessionOutputs) -> list[type]:
    return [type(sink) for sink in outputs.pipeline.sinks]


@pytest.fixture
def out(tmp_path: Path) -> str:
    return str(tmp_path / "stream.txt")


def test_by_default_the_pretty_stream_alone(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(output_path=out), tmp_path)
    assert sink_types(outputs) == [PrettySink]
    assert outputs.writer is None and outputs.table is None


def test_json_replaces_the_pretty_stream(tmp_path: Path, out: str) -> None:
    assert sink_types(outputs_for(OutputOptions(json=True, output_path=out), tmp_path)) == [JsonSink]


def test_without_output_path_the_stream_is_stdout(tmp_path: Path) -> None:
    outputs = outputs_for(OutputOptions(json=True), tmp_path)
    assert outputs.stream is sys.stdout


def test_write_records_alongside_the_stream(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(record_path=str(tmp_path / "s.rec"), output_path=out), tmp_path)
    assert sink_types(outputs) == [RecordingWriter, PrettySink]


def test_quiet_records_without_any_stream(tmp_path: Path) -> None:
    outputs = outputs_for(OutputOptions(record_path=str(tmp_path / "s.rec"), quiet=True), tmp_path)
    assert sink_types(outputs) == [RecordingWriter]
    assert outputs.stream is None
    assert not outputs.reader_gone()


@pytest.mark.parametrize(
    "views",
    [OutputOptions(tree=True), OutputOptions(summary=True), OutputOptions(timeline=()), OutputOptions(timeline=(5,))],
)
def test_views_replace_the_stream_with_the_process_table(tmp_path: Path, out: str, views: OutputOptions) -> None:
    outputs = outputs_for(dataclasses.replace(views, output_path=out), tmp_path)
    assert sink_types(outputs) == [ProcessTable]
    assert outputs.stream is not None  # the views are printed there at the end


def test_a_trace_export_keeps_the_stream_and_adds_the_process_table(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(export_path=str(tmp_path / "t.json"), output_path=out), tmp_path)
    assert sink_types(outputs) == [ProcessTable, PrettySink]


def test_every_output_at_once(tmp_path: Path, out: str) -> None:
    options = OutputOptions(
        json=True, output_path=out, record_path=str(tmp_path / "s.rec"), tree=True, export_path=str(tmp_path / "t.json")
    )
    assert sink_types(outputs_for(options, tmp_path)) == [RecordingWriter, ProcessTable]


def test_the_stream_gets_what_the_filter_lets_through(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(json=True, output_path=out), tmp_path, FilterSpec(kinds=frozenset({"exec"})))
    outputs.pipeline.write(EVENTS)
    outputs.close("ended")
    outputs.finish(None)
    assert [json.loads(line)["type"] for line in Path(out).read_text().splitlines()] == ["exec"]


def test_closing_ends_the_recording_with_the_reason_and_the_count(tmp_path: Path) -> None:
    path = str(tmp_path / "s.rec")
    outputs = outputs_for(OutputOptions(record_path=path, quiet=True), tmp_path)
    outputs.pipeline.write(EVENTS)
    outputs.close("stopped by SIGINT")
    outputs.finish(None)
    recording = open_recording(path)
    assert [ev for batch in recording.events() for ev in batch] == EVENTS
    assert recording.trailer is not None
    assert (recording.trailer["reason"], recording.trailer["events"]) == ("stopped by SIGINT", len(EVENTS))


def test_finish_prints_the_views_asked_for_in_order_with_the_losses(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(tree=True, summary=True, color="never", output_path=out), tmp_path)
    outputs.pipeline.write(EVENTS)
    outputs.pipeline.lost(14 * MS, 2, 2)
    outputs.close("ended")
    outputs.finish(SHELL)
    table = ProcessTable()
    table.seed(SNAPSHOT)
    table.write(EVENTS)
    table.lost(14 * MS, 2, 2)
    expected = io.StringIO()
    render_tree(table, expected, False, roots=[SHELL])
    render_summary(table, expected, False, {"lifecycle": 2, "signal": 0})
    assert Path(out).read_text() == expected.getvalue()


def test_finish_exports_the_trace_to_a_private_file(tmp_path: Path, out: str) -> None:
    export = tmp_path / "t.json"
    outputs = outputs_for(OutputOptions(export_path=str(export), json=True, output_path=out), tmp_path)
    outputs.pipeline.write(EVENTS)
    outputs.close("ended")
    outputs.finish(None)
    assert json.loads(export.read_text())  # a whole JSON document
    assert export.stat().st_mode & 0o777 == 0o600
    assert len(Path(out).read_text().splitlines()) == len(EVENTS)  # and the stream as well


def test_finish_closes_an_output_file(tmp_path: Path, out: str) -> None:
    outputs = outputs_for(OutputOptions(output_path=out), tmp_path)
    outputs.close("ended")
    outputs.finish(None)
    assert outputs.stream is not None and outputs.stream.closed


def test_an_output_file_that_cannot_be_created_is_a_recording_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot write"):
        outputs_for(OutputOptions(output_path=str(tmp_path / "no-such-dir" / "out.txt")), tmp_path)


@pytest.mark.parametrize("field", ["record_path", "export_path"])
def test_existing_files_are_refused_before_anything_starts_unless_forced(tmp_path: Path, field: str) -> None:
    existing = tmp_path / "there"
    existing.write_text("keep me")
    with pytest.raises(RecordingError, match="exists; use --force"):
        refuse_existing_outputs(OutputOptions(**{field: str(existing)}))
    refuse_existing_outputs(OutputOptions(force=True, **{field: str(existing)}))
    refuse_existing_outputs(OutputOptions(**{field: str(tmp_path / "new")}))
    assert existing.read_text() == "keep me"


def test_a_dangling_symlink_counts_as_existing(tmp_path: Path) -> None:
    link = tmp_path / "link"
    os.symlink(tmp_path / "nowhere", link)
    with pytest.raises(RecordingError):
        refuse_existing_outputs(OutputOptions(record_path=str(link)))


@pytest.mark.parametrize(
    ("options", "counts"),
    [
        (OutputOptions(summary=True), True),
        (OutputOptions(report_path="r.html"), True),
        (OutputOptions(top=True), False),  # the live view shows lives, not totals
        (OutputOptions(tree=True), False),
        (OutputOptions(timeline=()), False),
        (OutputOptions(export_path="t.json"), False),
    ],
)
def test_the_table_counts_totals_only_for_an_output_that_shows_them(options: OutputOptions, counts: bool, tmp_path):
    outputs = outputs_for(options, tmp_path)
    assert outputs.table is not None
    outputs.pipeline.write(EVENTS)
    assert (outputs.table.aggregates.processes == 1) is counts
    assert [rec.tgid for rec in outputs.table.processes()] == [SHELL, 200]


def test_the_live_views_table_keeps_more_ended_processes_than_it_shows_and_no_more(tmp_path):
    from proctrace.model.process_table import KEEP_FINISHED
    from proctrace.session.outputs import TOP_KEEP_FINISHED
    from proctrace.top.model import ENDED_SHOWN_MAX, ViewState, build_rows

    assert ENDED_SHOWN_MAX < TOP_KEEP_FINISHED < KEEP_FINISHED
    outputs = outputs_for(OutputOptions(top=True), tmp_path)
    lives: list[Event] = []
    for n in range(TOP_KEEP_FINISHED + 500):
        t, pid = 20 * MS + n * 10_000, 1000 + n
        lives += [fork(t, pid), exit_(t + 5_000, pid, t, exited(n % 3)), reap(t + 6_000, pid, exited(n % 3))]
    outputs.pipeline.write(lives)
    table = outputs.table
    assert table is not None and table.dropped == 500 and len(table) == TOP_KEEP_FINISHED + 1  # the shell lives
    ended = [row for row in build_rows(table, ViewState(), table.last_ts or 0) if row.pid >= 1000]
    assert len(ended) == ENDED_SHOWN_MAX
    # With a trace export besides, the table keeps what the export shows
    exporting = outputs_for(OutputOptions(top=True, export_path=str(tmp_path / "t.json")), tmp_path)
    assert exporting.table is not None and exporting.table.keep_finished == KEEP_FINISHED
