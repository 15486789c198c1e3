"""What a session writes to (the stream, a recording, the process table for the
views) and what it does at its end: close with a reason, print the views, export
the trace. Built the same way for live tracing and for replay; only the source
of events differs."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from proctrace.formats.recording import RecordingError, RecordingWriter, create_private_file
from proctrace.model.cgroups import CgroupTable
from proctrace.model.clock import Clock
from proctrace.model.filters import EventFilter
from proctrace.model.process_table import KEEP_FINISHED, ProcessTable
from proctrace.model.procsnap import ProcInfo
from proctrace.model.redact import Redactor
from proctrace.session.options import OutputOptions
from proctrace.session.pipeline import Pipeline
from proctrace.session.rotation import RotatingRecorder, refuse_existing_parts
from proctrace.session.sinks import JsonSink, PrettySink, Sink, reader_gone

if TYPE_CHECKING:
    from proctrace.formats.report import SessionInfo
    from proctrace.top.app import TopSink

REPORT_KEEP_FINISHED = 250_000
"""Finished processes a session with --report keeps for it (the views keep
KEEP_FINISHED): about 1.5 KiB each."""

TOP_KEEP_FINISHED = 2_000
"""Finished processes the live view alone keeps: it shows those that ended in
the last few seconds, at most 200 (top.model.ENDED_SHOWN_MAX), and opens the
timeline of one it shows. Ten times that many leave a margin; 10,000 held a
storm's --top at 52 MiB of RSS, where it starts at 29."""


def use_color(options: OutputOptions, stream: TextIO) -> bool:
    return options.color == "always" or (options.color == "auto" and stream.isatty() and "NO_COLOR" not in os.environ)


def refuse_existing(path: str, force: bool) -> None:
    """Fail before anything starts, rather than after the probes are attached."""
    if not force and os.path.lexists(path):
        raise RecordingError(f"{path} exists; use --force to overwrite it")


def refuse_unwritable(path: str) -> None:
    """A file written only at the session's end (the trace export, the report)
    needs a directory it can be created in: said now, not after the session."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise RecordingError(f"cannot create {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RecordingError(f"cannot create {path}: the directory {directory} is not writable")


def refuse_existing_outputs(options: OutputOptions) -> None:
    """The files a session creates (recording, trace export, report) must not
    exist, unless forced; those written at its end must be creatable."""
    for path in (options.record_path, options.export_path, options.report_path):
        if path:
            refuse_existing(path, options.force)
    for path in (options.export_path, options.report_path):
        if path:
            refuse_unwritable(path)
    if options.record_path and options.rotation is not None:
        refuse_existing_parts(options.record_path, options.force, time.time_ns())


def open_output(path: str | None) -> TextIO:
    if path is None:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", errors="surrogateescape", buffering=1 << 16)
    except OSError as exc:
        raise RecordingError(f"cannot write {path}: {exc.strerror}") from None


class SessionOutputs:
    """The sinks of one session behind a filter, and what to do at its end."""

    def __init__(
        self,
        options: OutputOptions,
        event_filter: EventFilter,
        clock: Clock,
        snapshot: list[ProcInfo],
        recording_header: dict[str, Any] | None,
        redactor: Redactor | None = None,
        cgroups: CgroupTable | None = None,
        exports: list[Sink] | None = None,
    ) -> None:
        """`snapshot` and the header's must be redacted already (they are read
        once, at the start); `redactor` redacts every batch of events;
        `cgroups` is the session's table, which the views read; `exports`
        are the sinks of --metrics and --otlp (session/exports.py)."""
        self.options = options
        self.writer: RecordingWriter | RotatingRecorder | None = None
        self.table: ProcessTable | None = None
        self.stream: TextIO | None = None
        sinks: list[Sink] = []
        if recording_header is not None and options.record_path is not None:
            if options.rotation is None:
                self.writer = RecordingWriter.create(options.record_path, recording_header, options.force)
            else:
                self.writer = RotatingRecorder(
                    options.record_path, recording_header, snapshot, options.rotation, options.force, cgroups
                )
            sinks.append(self.writer)
        self.top: TopSink | None = None
        if options.needs_table:
            # A report shows every process of the session, not only the latest
            # ones the views keep (it says how many it had to leave out).
            if options.report_path:
                keep = REPORT_KEEP_FINISHED
            elif options.top and not options.export_path:
                keep = TOP_KEEP_FINISHED
            else:
                keep = KEEP_FINISHED
            self.table = ProcessTable(keep_finished=keep, cgroups=cgroups, counting=options.counts_totals)
            self.table.seed(snapshot)
            if options.top:
                from proctrace.top.app import TopSink

                # The view feeds the table itself, under the lock its drawing takes.
                self.top = TopSink(self.table, live=True)  # a replay says otherwise
                sinks.append(self.top)
            else:
                sinks.append(self.table)
        if not options.quiet and not options.top:
            self.stream = open_output(options.output_path)
            if not options.views:
                sinks.append(self._stream_sink(self.stream, clock))
        sinks += exports or []
        self.clock = clock
        self.pipeline = Pipeline(event_filter, sinks, redactor)

    def _stream_sink(self, stream: TextIO, clock: Clock) -> Sink:
        if self.options.json:
            return JsonSink(stream, clock)
        return PrettySink(stream, clock, color=use_color(self.options, stream), tty=stream.isatty())

    def reader_gone(self) -> bool:
        """Whether the stream is a pipe whose reader went away (`proctrace | head -1`)."""
        return self.stream is not None and reader_gone(self.stream)

    def close(self, reason: str) -> None:
        """End the stream and the recording (with its trailer and why it ended)."""
        try:
            if self.writer is not None:
                self.writer.close(reason)
        finally:
            self.pipeline.close()

    def finish(self, command_pid: int | None, info: SessionInfo | None = None) -> None:
        """Export the trace, write the report and print the views asked for,
        then close the output. With `command_pid` (a `-- COMMAND` session), they
        cover the command's tree; `info` is what the report says of the session."""
        options = self.options
        roots = None
        if command_pid is not None and self.table is not None:
            roots = self.table.command_roots(command_pid)
        if options.export_path and self.table is not None:
            export_trace(options.export_path, options.force, self.table, self.clock, roots)
        if options.report_path and self.table is not None and info is not None:
            from proctrace.formats.report import report_data, write_report

            data = report_data(self.table, info, self.pipeline.lost_by_class, roots)
            write_report(options.report_path, options.force, data)
        stream = self.stream
        if stream is None:
            return
        if options.views and self.table is not None:
            render_views(options, self.table, stream, roots, self.pipeline.lost_by_class)
        if stream is not sys.stdout:
            stream.close()
        else:
            stream.flush()


def export_trace(path: str, force: bool, table: ProcessTable, clock: Clock, roots: list[int] | None) -> None:
    from proctrace.formats.chrome_trace import export_chrome_trace

    with open(create_private_file(path, force), "w", encoding="ascii") as out:
        export_chrome_trace(table, out, clock, roots)


def render_views(
    options: OutputOptions, table: ProcessTable, stream: TextIO, roots: list[int] | None, lost: Mapping[str, int]
) -> None:
    from proctrace.formats.jsonl import dumps_line
    from proctrace.formats.views import render_summary, render_timeline, render_tree, timeline_json

    color = use_color(options, stream)
    if options.timeline is not None:
        pids = list(options.timeline) or None
        if options.json:
            stream.write("".join(dumps_line(obj) for obj in timeline_json(table, pids, roots=roots)))
        else:
            render_timeline(table, pids, stream, color, roots=roots)
    if options.tree:
        render_tree(table, stream, color, roots=roots)
    if options.summary:
        render_summary(table, stream, color, lost)
