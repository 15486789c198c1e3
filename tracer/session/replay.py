"""A replayed session: a recording read back as the source of events, with no
root and no bcc, through the same filters, sinks and views as live."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from proctrace.formats.recording import Recording, open_recording
from proctrace.formats.text import safe
from proctrace.model.filters import EventFilter
from proctrace.session.loop import SessionResult, SourceRecord, Tick, drive
from proctrace.session.options import SessionOptions
from proctrace.session.outputs import SessionOutputs, refuse_existing_outputs

# A recording has no status line; the reader of the output is checked after every batch.
_CHECK_READER = Tick(None)


class ReplaySource:
    """The batches and lost reports of a recording, in file order."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        for record in self.recording.records():
            yield record
            if type(record) is list:
                yield _CHECK_READER


def replay(path: str, options: SessionOptions) -> SessionResult:
    """Read the recording at `path` back into the outputs asked for."""
    refuse_existing_outputs(options.outputs)
    recording = open_recording(path)
    event_filter = EventFilter(options.filters)
    event_filter.seed(recording.snapshot)
    header = None
    if options.outputs.record_path:
        # A filtered copy: its header says which filters made it.
        recorded_options = {**recording.header.get("options", {}), "filters": options.filters.as_dict()}
        header = dict(recording.header, options=recorded_options)
    outputs = SessionOutputs(options.outputs, event_filter, recording.clock, recording.snapshot, header)
    try:
        drive(ReplaySource(recording), outputs.pipeline, outputs.reader_gone)
    finally:
        outputs.close("replayed")
    command_pid = recording.header.get("options", {}).get("command_pid")
    outputs.finish(command_pid if isinstance(command_pid, int) else None)
    for warning in recording.warnings:
        print(f"proctrace: warning: {safe(warning)}", file=sys.stderr)
    return SessionResult(exit_code=0)
