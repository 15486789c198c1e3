"""What a session writes to: the stream, a recording, the process table for the
views. Built the same way for live tracing and for replay; only the source
of events differs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from proctrace.formats.recording import RecordingError, RecordingWriter, create_private_file
from proctrace.model.clock import Clock
from proctrace.model.filters import EventFilter
from proctrace.model.process_table import ProcessTable
from proctrace.model.procsnap import ProcInfo
from proctrace.session.pipeline import Pipeline
from proctrace.session.sinks import JsonSink, PrettySink, Sink


def use_color(args: argparse.Namespace, stream: TextIO) -> bool:
    return args.color == "always" or (args.color == "auto" and stream.isatty() and "NO_COLOR" not in os.environ)


def wants_views(args: argparse.Namespace) -> bool:
    return args.timeline is not None or args.tree or args.summary


def refuse_existing(path: str, force: bool) -> None:
    """Fail before anything starts, rather than after the probes are attached."""
    if not force and os.path.lexists(path):
        raise RecordingError(f"{path} exists; use --force to overwrite it")


def open_output(path: str | None) -> TextIO:
    if path is None:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", errors="surrogateescape", buffering=1 << 16)
    except OSError as exc:
        raise RecordingError(f"cannot write {path}: {exc.strerror}") from None


class Session:
    """The sinks of one session behind a filter, and what to do at its end."""

    def __init__(
        self,
        args: argparse.Namespace,
        event_filter: EventFilter,
        clock: Clock,
        snapshot: list[ProcInfo],
        recording_header: dict[str, Any] | None,
    ) -> None:
        self.args = args
        self.writer: RecordingWriter | None = None
        self.table: ProcessTable | None = None
        self.stream: TextIO | None = None
        sinks: list[Sink] = []
        if recording_header is not None:
            self.writer = RecordingWriter.create(args.write, recording_header, args.force)
            sinks.append(self.writer)
        if wants_views(args) or args.export_trace:
            self.table = ProcessTable()
            self.table.seed(snapshot)
            sinks.append(self.table)
        if not args.quiet:
            self.stream = open_output(args.output)
            if not wants_views(args):
                sinks.append(self._stream_sink(self.stream, clock))
        self.clock = clock
        self.pipeline = Pipeline(event_filter, sinks)

    def _stream_sink(self, stream: TextIO, clock: Clock) -> Sink:
        if self.args.json:
            return JsonSink(stream, clock)
        return PrettySink(stream, clock, color=use_color(self.args, stream), tty=stream.isatty())

    def close(self, reason: str) -> None:
        """End the stream and the recording (with its trailer and why it ended)."""
        try:
            if self.writer is not None:
                self.writer.close(reason)
        finally:
            self.pipeline.close()

    def finish(self, roots: list[int] | None) -> None:
        """Export the trace and print the views asked for, then close the output."""
        if self.args.export_trace and self.table is not None:
            export_trace(self.args.export_trace, self.args.force, self.table, self.clock, roots)
        stream = self.stream
        if stream is None:
            return
        if wants_views(self.args) and self.table is not None:
            render_views(self.args, self.table, stream, roots, self.pipeline.lost_total)
        if stream is not sys.stdout:
            stream.close()
        else:
            stream.flush()


def export_trace(path: str, force: bool, table: ProcessTable, clock: Clock, roots: list[int] | None) -> None:
    from proctrace.formats.chrome_trace import export_chrome_trace

    with open(create_private_file(path, force), "w", encoding="ascii") as out:
        export_chrome_trace(table, out, clock, roots)


def render_views(
    args: argparse.Namespace, table: ProcessTable, stream: TextIO, roots: list[int] | None, lost: int
) -> None:
    from proctrace.formats.jsonl import dumps_line
    from proctrace.formats.views import render_summary, render_timeline, render_tree, timeline_json

    color = use_color(args, stream)
    if args.timeline is not None:
        pids = args.timeline or None
        if args.json:
            stream.write("".join(dumps_line(obj) for obj in timeline_json(table, pids, roots=roots)))
        else:
            render_timeline(table, pids, stream, color, roots=roots)
    if args.tree:
        render_tree(table, stream, color, roots=roots)
    if args.summary:
        render_summary(table, stream, color, lost)
