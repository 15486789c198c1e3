"""A replayed session: a recording read back as the source of events, with no
root and no bcc, through the same filters, sinks and views as live."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from proctrace.formats.recording import Recording
from proctrace.formats.recording_set import ROTATION_KEY, RecordingSet, open_recordings
from proctrace.formats.report import SessionInfo, traced_words
from proctrace.formats.text import safe
from proctrace.model.events import Event
from proctrace.model.filters import EventFilter
from proctrace.model.ordering import Reorderer
from proctrace.model.path_search import PATH_SEARCH_HORIZON_NS, mark_path_searches
from proctrace.model.redact import merge_descriptions
from proctrace.session.cgroups import SteppedSource, replay_step, table_of_recording
from proctrace.session.exports import SessionExports, gauge_seed
from proctrace.session.loop import SessionResult, SourceRecord, Tick, drive
from proctrace.session.options import SessionOptions
from proctrace.session.outputs import SessionOutputs, refuse_existing_outputs
from proctrace.session.pipeline import session_redactor

if TYPE_CHECKING:
    from proctrace.top.app import TopSink

# A recording has no status line; the reader of the output is checked after every batch.
_CHECK_READER = Tick(None)


class PathSearchLookahead:
    """Decides PATH searches for a recording whose exec events do not carry
    the decision (made by an earlier proctrace), as the live source does: each
    batch is held until the events of the horizon after it have been read, and
    decided with those in view."""

    def __init__(self) -> None:
        # The recording is in timestamp order already; the window only holds back.
        self._window = Reorderer(margin_ns=PATH_SEARCH_HORIZON_NS)

    def push(self, batch: list[Event]) -> list[Event]:
        """The events of `batch` (and earlier ones) now decided, in order."""
        released = self._window.push(batch, batch[-1].ts_ns) if batch else []
        mark_path_searches(released, self._window.pending)
        return released

    def flush(self) -> list[Event]:
        """Everything held, decided with no more to come."""
        released = self._window.flush()
        mark_path_searches(released, ())
        return released


class ReplaySource:
    """The batches and lost reports of a recording, in file order.

    Exec events that carry path_search are passed on as written, so that `-r`
    prints what the live session printed; a recording without it has it
    decided here (PathSearchLookahead)."""

    def __init__(self, recording: Recording | RecordingSet) -> None:
        self.recording = recording

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        recording = self.recording
        lookahead = PathSearchLookahead()
        for record in recording.records():
            if type(record) is list:
                # Known once the first exec record has been read, which is no
                # later than the batch holding it: before any exec, nothing to decide.
                if recording.exec_path_search is False:
                    record = lookahead.push(record)
                if record:
                    yield record
                    yield _CHECK_READER
            else:
                # A loss report keeps its place after the events before it, so
                # they are decided with what came before it: rare, and what
                # followed a loss was never certain to be complete anyway.
                held = lookahead.flush()
                if held:
                    yield held
                yield record
        held = lookahead.flush()
        if held:
            yield held
            yield _CHECK_READER


class PacedSource:
    """A replay's records at the live view's pace: `speed` times the recorded
    one, or at once when None."""

    def __init__(self, source: SteppedSource, view: TopSink, speed: float | None) -> None:
        self.source, self.view, self.speed = source, view, speed

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        from proctrace.top.app import paced

        records = self.source.records(shows_status)
        return records if self.speed is None else paced(records, self.view, self.speed)


def source_words(recording: Recording | RecordingSet) -> str:
    """ "recording FILE", or "3 recordings: FILE, FILE.1, FILE.2" (the first few named)."""
    if isinstance(recording, Recording):
        return f"recording {safe(recording.path)}"
    names = [safe(part.path) for part in recording.parts]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} recordings: {shown}" if len(names) > 1 else f"recording {shown}"


def replay_info(recording: Recording | RecordingSet, outputs: SessionOutputs, command_pid: int | None) -> SessionInfo:
    """What the report says of a replayed session: the recording's machine and
    start, and which files it was read from."""
    header = recording.header
    command = None
    if command_pid is not None and outputs.table is not None:
        held = [rec for rec in outputs.table.find(command_pid) if not rec.pre_existing]
        command = held[0].argv if held and held[0].argv else None
    started = header.get("started")
    return SessionInfo(
        str(header.get("hostname", "unknown")),
        str(header.get("kernel", "unknown")),
        traced_words(command),
        source_words(recording),
        started if isinstance(started, str) else None,
    )


def replay(path: str, options: SessionOptions) -> SessionResult:
    """Read the recording at `path` back into the outputs asked for; with
    `options.read_more`, or a directory, several as one session
    (tracer/formats/recording_set.py).

    Redacted as live is, whatever the recording's own redaction was: a
    recording made with --no-redact is redacted when read, unless --no-redact
    is given again."""
    refuse_existing_outputs(options.outputs)
    redactor = session_redactor(options.redaction)
    recording = open_recordings([path, *options.read_more])
    snapshot = redactor.snapshot(recording.snapshot)
    cgroups = table_of_recording(recording)
    event_filter = EventFilter(options.filters, cgroups)
    event_filter.seed(snapshot)
    header = None
    if options.outputs.record_path:
        # A filtered copy: its header says which filters made it, and what was
        # redacted in it (what the recording had redacted, and what is now).
        before = recording.header.get("options", {})
        recorded_options = {
            **before,
            "filters": options.filters.as_dict(),
            "redaction": merge_descriptions(before.get("redaction"), redactor.describe()),
        }
        header = dict(recording.header, options=recorded_options)
        header.pop(ROTATION_KEY, None)  # a copy is no part of the session it came from
        if any(new is not old for new, old in zip(snapshot, recording.snapshot, strict=True)):
            header["snapshot"] = [p.to_dict() for p in snapshot]
    command_pid = recording.header.get("options", {}).get("command_pid")
    exports = SessionExports(options.exports)
    try:
        sinks = exports.sinks(recording.clock, gauge_seed(snapshot, options.filters, command_pid is not None))
        outputs = SessionOutputs(
            options.outputs, event_filter, recording.clock, snapshot, header, redactor, cgroups, sinks
        )
    except BaseException:
        exports.close()
        raise
    try:
        source = SteppedSource(ReplaySource(recording), replay_step(cgroups))
        view = outputs.top
        if view is None:
            drive(source, outputs.pipeline, outputs.reader_gone)
        else:
            view.live = False
            with view.shown(lambda: None):
                drive(PacedSource(source, view, options.outputs.speed), outputs.pipeline, outputs.reader_gone)
                view.wait_for_quit()
    finally:
        try:
            outputs.close("replayed")
        finally:
            exports.close()  # with --metrics, served while the replay lasts (paced by --top --speed)
    command_pid = command_pid if isinstance(command_pid, int) else None
    outputs.finish(command_pid, replay_info(recording, outputs, command_pid))
    for warning in recording.warnings:
        print(f"proctrace: warning: {safe(warning)}", file=sys.stderr)
    return SessionResult(exit_code=0)
