"""What a session is asked to do: the options of one run, typed, so that nothing
below the command line sees argparse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from proctrace.kernel.program import ARGV_MAX_DEFAULT, SIGNAL_RATE_DEFAULT
from proctrace.model.filters import FilterSpec


@dataclass(frozen=True)
class RotationOptions:
    """-w FILE as successive recordings (tracer/session/rotation.py): a new one
    when the current reaches `size` bytes or has run `interval_s` seconds (or
    on SIGUSR1), keeping the latest `keep` of them."""

    size: int | None = None  # --rotate-size, bytes
    interval_s: float | None = None  # --rotate-time, seconds
    keep: int | None = None  # --keep; None: every file stays


@dataclass(frozen=True)
class OutputOptions:
    """Where the events go and in what form."""

    json: bool = False
    output_path: str | None = None  # the stream's file; None: stdout
    record_path: str | None = None  # -w: the recording
    quiet: bool = False  # record without printing the stream
    force: bool = False  # replace an existing recording or trace export
    color: Literal["auto", "always", "never"] = "auto"
    timeline: tuple[int, ...] | None = None  # None: no timeline; (): every process's
    tree: bool = False
    summary: bool = False
    export_path: str | None = None  # --export-trace: the Chrome trace
    report_path: str | None = None  # --report: the HTML report
    top: bool = False  # --top: the live full-screen view instead of the stream
    speed: float | None = None  # --speed with -r --top: replay at this many times the recorded pace
    rotation: RotationOptions | None = None  # --rotate-size, --rotate-time, --keep with -w

    @property
    def needs_table(self) -> bool:
        """Whether the session keeps the process table: for the views, the trace
        export, the report or the live view."""
        return self.views or bool(self.export_path) or bool(self.report_path) or self.top

    @property
    def counts_totals(self) -> bool:
        """Whether the table keeps the aggregates: the summary and the report
        show totals; the live view, the tree, the timelines and the trace
        export show lives only."""
        return self.summary or bool(self.report_path)

    @property
    def views(self) -> bool:
        """Whether views are printed at the end, instead of the event stream."""
        return self.timeline is not None or self.tree or self.summary


@dataclass(frozen=True)
class TransportOptions:
    """How events travel from the kernel: which buffer, how large, how much argv
    per exec, and which signals the kernel counts instead of sending."""

    buffer: Literal["ring", "perf"] | None = None  # None: the ring buffer where the kernel has one
    buffer_size: int | None = None  # bytes; None: the transport's default
    signal_buffer_size: int | None = None  # the signals' buffer; None: as buffer_size
    argv_max: int = ARGV_MAX_DEFAULT
    signal_rate: int = SIGNAL_RATE_DEFAULT  # signals a second per sender, target and signal; 0: no limit
    all_signals: bool = False  # stream every signal: no folding of ptrace stops, no rate limit
    env: bool = False  # --env: exec events carry the new image's environment


@dataclass(frozen=True)
class RedactionOptions:
    """Which secrets are redacted before any output sees them (tracer/model/redact.py)."""

    enabled: bool = True  # False: --no-redact
    patterns: tuple[str, ...] = ()  # --redact: regular expressions searched in names
    env_allow: tuple[str, ...] | None = None  # --env-allow: the only variables kept


@dataclass(frozen=True)
class ExportOptions:
    """What the session exports besides its outputs (tracer/export/), as given
    on the command line and parsed where they are used."""

    metrics: str | None = None  # --metrics [ADDR:]PORT: /metrics for Prometheus
    otlp: str | None = None  # --otlp URL: each event as an OpenTelemetry log record


@dataclass(frozen=True)
class SessionOptions:
    """One session: its outputs, its filters, its transport, and either a
    command to run or a recording to read (or neither: the whole machine)."""

    outputs: OutputOptions = field(default_factory=OutputOptions)
    filters: FilterSpec = field(default_factory=FilterSpec)
    transport: TransportOptions = field(default_factory=TransportOptions)
    redaction: RedactionOptions = field(default_factory=RedactionOptions)
    exports: ExportOptions = field(default_factory=ExportOptions)
    command: tuple[str, ...] | None = None  # -- COMMAND [ARG...]
    as_root: bool = False  # run COMMAND as root under sudo
    read_path: str | None = None  # -r: replay this recording instead of tracing
    read_more: tuple[str, ...] = ()  # further -r recordings, read after it as one session
