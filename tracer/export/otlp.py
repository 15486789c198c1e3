"""`--otlp URL`: every event as an OpenTelemetry log record, sent over
OTLP/HTTP in protobuf.

The body of a record is the event's --json line (formats/jsonl.event_json), so
a pipeline parses it as it parses --json; the attributes (log_attributes)
follow OTel's semantic conventions where they have a name for a field
(process.pid, process.parent_pid, process.command, process.executable.path,
process.command_args, process.exit.code, thread.id, error.type) and put the
rest under proctrace.*.

It must never slow the kernel drain. OtlpSink.write only appends the batch to
a queue bounded in events and returns; a thread of its own turns batches into
ExportLogsServiceRequests and POSTs them. When the collector is slow or down
the queue fills, and what comes beyond its bound is dropped and counted; the
count is said on stderr at the end and is a metric with --metrics. At the end,
what is queued is sent within a time limit, then given up on (and counted).

Why not the SDK's LoggerProvider, BatchLogRecordProcessor and OTLPLogExporter:
the SDK's processor drops records from a full queue without a count a program
can read, so the drops could be neither reported nor exported; its exporter
retries inside export() (up to its timeout per batch), which a time-limited
shutdown would have to wait out; and each event would first become an SDK
LogRecord, then a protobuf message object per attribute (12.8 us an event
here, against 9.2 us for otlp_wire.py's bytes).
The request is instead written by otlp_wire.py and POSTed with http.client:
the same ExportLogsServiceRequest, application/x-protobuf, to /v1/logs, as
the OTLP/HTTP specification defines it, with no package beyond Python's own.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from proctrace import __version__
from proctrace.export.errors import ExportError
from proctrace.export.otlp_wire import AttributeValue, log_record, logs_request
from proctrace.formats.jsonl import event_json
from proctrace.model.clock import Clock
from proctrace.model.events import (
    CLONE_THREAD,
    FOLD_REASONS,
    LIFECYCLE,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    errno_name,
    signal_name,
)

LOGS_PATH = "/v1/logs"  # what OTLP/HTTP appends to a base endpoint for logs
QUEUE_EVENTS = 20_000  # events held for a slow collector: ~2 s of a fork storm, ~10-20 MB
BATCH_EVENTS = 2_000  # events in one request at most
SEND_INTERVAL_S = 0.5  # how long a small batch waits for company before it is sent
REQUEST_TIMEOUT_S = 5.0
RETRY_MAX_S = 5.0  # the longest wait between attempts to reach a collector that failed
SHUTDOWN_S = 3.0  # the time the end of a session gives to what is still queued

# Severity numbers of the OTel log data model.
SEVERITY_INFO, SEVERITY_WARN = 9, 13


class OtlpError(ExportError, ValueError):
    """An --otlp URL that cannot be used."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # as given, for messages
    scheme: str
    host: str
    port: int
    path: str


def parse_endpoint(url: str) -> Endpoint:
    """http://host:4318 -> http://host:4318/v1/logs (the specification's rule for
    a base URL: the signal's path is appended); a URL with a path is used as it
    is (a signal-specific endpoint)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OtlpError(f"not an http:// or https:// URL: {url!r} (try http://127.0.0.1:4318)")
    if not parts.hostname:
        raise OtlpError(f"no host in {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OtlpError(f"not a port in {url!r}") from None
    path = parts.path if parts.path not in ("", "/") else LOGS_PATH
    if parts.query:
        path += "?" + parts.query
    return Endpoint(url, parts.scheme, parts.hostname, port, path)


def _text(raw: bytes) -> str:
    # Protobuf strings must be UTF-8; the body keeps the exact bytes (as --json
    # escapes them), so an attribute can show an odd byte as U+FFFD.
    return raw.decode("utf-8", "replace")


def log_attributes(ev: Event) -> dict[str, AttributeValue]:
    """The attributes of the record of `ev`: semantic-convention names where
    they exist, proctrace.* for the rest."""
    attrs: dict[str, AttributeValue] = {
        "proctrace.event.type": ev.kind,
        "process.pid": ev.tgid,
        "thread.id": ev.pid,
        "process.parent_pid": ev.ppid,
        "process.command": _text(ev.comm),
        "proctrace.uid": ev.uid,
    }
    cls = type(ev)
    if cls is ForkEvent:
        assert isinstance(ev, ForkEvent)
        attrs["proctrace.fork.child_pid"] = ev.child_tgid
        attrs["proctrace.fork.child_tid"] = ev.child_pid
        attrs["proctrace.fork.thread"] = bool(ev.clone_flags & CLONE_THREAD)
    elif cls is ExecEvent:
        assert isinstance(ev, ExecEvent)
        attrs["process.executable.path"] = _text(ev.filename)
        attrs["process.command_args"] = [_text(arg) for arg in ev.argv]
        if ev.errno:
            attrs["error.type"] = errno_name(ev.errno)
            attrs["proctrace.exec.path_search"] = ev.path_search
    elif cls is ExitEvent:
        assert isinstance(ev, ExitEvent)
        attrs["proctrace.exit.process"] = ev.process_exit
        status = ev.status
        if status.exit_code is not None:
            attrs["process.exit.code"] = status.exit_code
        else:
            attrs["proctrace.exit.signal"] = signal_name(status.signo)
        if ev.oom_killed:
            attrs["proctrace.exit.oom_killed"] = True
    elif cls is SignalEvent:
        assert isinstance(ev, SignalEvent)
        attrs["proctrace.signal.name"] = signal_name(ev.signo)
        attrs["proctrace.signal.stage"] = "generate" if ev.stage == SIGNAL_GENERATE else "deliver"
        attrs["proctrace.signal.target_pid"] = ev.target_pid
    elif cls is SignalSummaryEvent:
        assert isinstance(ev, SignalSummaryEvent)
        attrs["proctrace.signal.name"] = signal_name(ev.signo)
        attrs["proctrace.signal.target_pid"] = ev.target_pid
        attrs["proctrace.signal.count"] = ev.count
        attrs["proctrace.signal.folded"] = FOLD_REASONS.get(ev.reason, str(ev.reason))
    elif cls is ReapEvent:
        assert isinstance(ev, ReapEvent)
        attrs["proctrace.reap.pid"] = ev.reaped_pid
    elif cls is CredEvent:
        assert isinstance(ev, CredEvent)
        attrs["proctrace.cred.syscall"] = ev.syscall
    elif cls is CgroupEvent:
        assert isinstance(ev, CgroupEvent)
        attrs["proctrace.cgroup.action"] = ev.action
        attrs["proctrace.cgroup.path"] = _text(ev.path)
    return attrs


def severity(ev: Event) -> int:
    """WARN for a failure (an exec that failed, not a PATH miss; a process that
    did not exit 0), INFO for the rest: a pipeline can keep only the failures."""
    if type(ev) is ExecEvent and ev.errno and not ev.path_search:  # type: ignore[attr-defined]
        return SEVERITY_WARN
    if type(ev) is ExitEvent and ev.process_exit and ev.status.raw != 0:  # type: ignore[attr-defined]
        return SEVERITY_WARN
    return SEVERITY_INFO


def resource_attributes() -> dict[str, AttributeValue]:
    uname = os.uname()
    return {
        "service.name": "proctrace",
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "os.type": "linux",
        "os.version": uname.release,
    }


def export_request(events: list[Event], clock: Clock, resource: dict[str, AttributeValue]) -> bytes:
    """The serialized ExportLogsServiceRequest carrying `events`, one log record each."""
    observed = time.time_ns()
    wall = clock.offset_ns
    records = [
        log_record(ev.ts_ns + wall, observed, severity(ev), event_json(ev, clock), log_attributes(ev)) for ev in events
    ]
    return logs_request(resource, "proctrace", __version__, records)


Post = Callable[[bytes, float], None]


# The answers after which OTLP/HTTP says a request may be sent again; any
# other failure status means the collector will never take it.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class Rejected(http.client.HTTPException):
    """The collector answered with a status other than 2xx."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS


class HttpPost:
    """POSTs a serialized request to the endpoint over one kept-alive
    connection; raises OSError or http.client.HTTPException (Rejected for an
    answer other than 2xx) on any failure."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn: http.client.HTTPConnection | None = None

    def __call__(self, body: bytes, timeout: float) -> None:
        ep = self.endpoint
        if self._conn is None:
            cls = http.client.HTTPSConnection if ep.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(ep.host, ep.port, timeout=timeout)
        conn = self._conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("POST", ep.path, body, {"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
        except BaseException:
            conn.close()
            self._conn = None
            raise
        if not 200 <= response.status < 300:
            raise Rejected(response.status, response.reason)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class OtlpSink:
    """A Sink whose write() only queues; a thread of its own sends."""

    shows_status = False

    def __init__(
        self,
        endpoint: Endpoint,
        clock: Clock,
        *,
        post: Post | None = None,
        queue_events: int = QUEUE_EVENTS,
        shutdown_s: float = SHUTDOWN_S,
    ) -> None:
        self.endpoint = endpoint
        # A clock of its own: Clock.iso caches the second it formatted, which
        # two threads must not share.
        self._clock = Clock(clock.offset_ns)
        self._post: Post = post if post is not None else HttpPost(endpoint)
        self._resource = resource_attributes()
        self._queue: deque[list[Event]] = deque()
        self._queued = 0  # events in _queue and in the batch being sent
        self._max = queue_events
        self._shutdown_s = shutdown_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._given_up = False
        self.sent = 0
        self.dropped = 0
        # Why the latest request failed, as the end of the session says it; None: none failed.
        self._reason: str | None = None
        self._thread = threading.Thread(target=self._run, name="proctrace-otlp", daemon=True)
        self._thread.start()

    def write(self, events: list[Event]) -> None:
        with self._lock:
            room = self._max - self._queued
            if room < len(events):
                self.dropped += len(events) - max(room, 0)
                events = events[: max(room, 0)]
            if events:
                self._queue.append(events)
                self._queued += len(events)
        if self._queued >= BATCH_EVENTS:
            self._wake.set()

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        pass  # a loss is not an event; --metrics counts losses

    def status(self, text: str) -> None:
        pass

    def _take(self) -> list[Event]:
        """Up to BATCH_EVENTS of the oldest queued events; they stay counted in
        _queued until sent or dropped, so the bound covers them too."""
        batch: list[Event] = []
        with self._lock:
            while self._queue and len(batch) < BATCH_EVENTS:
                head = self._queue.popleft()
                room = BATCH_EVENTS - len(batch)
                if len(head) > room:
                    self._queue.appendleft(head[room:])
                    head = head[:room]
                batch += head
        return batch

    def _run(self) -> None:
        deadline: float | None = None
        retry_s = 0.0
        batch: list[Event] = []
        body = b""  # the request of `batch`, made once however often it is tried
        while True:
            if self._closing and deadline is None:
                deadline = time.monotonic() + self._shutdown_s
            if not batch:
                batch = self._take()
                body = b""
            if not batch:
                if self._closing:
                    return
                self._pause(SEND_INTERVAL_S)
                continue
            timeout = REQUEST_TIMEOUT_S if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                return  # close() counts what is left as dropped
            try:
                if not body:
                    body = export_request(batch, self._clock, self._resource)
            except Exception as exc:  # a fault of ours: said at the end, not a dead thread
                self._reason = f"could not encode them ({type(exc).__name__}: {exc})"
                self._drop(batch)
                batch = []
                continue
            try:
                self._post(body, timeout)
            except (OSError, http.client.HTTPException) as exc:
                url, error = self.endpoint.url, str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    self._reason = f"collector too slow ({url}: no answer within {REQUEST_TIMEOUT_S:g} s)"
                elif isinstance(exc, Rejected) and not exc.retryable:
                    self._reason = f"collector refused them ({url}: {error})"
                    self._drop(batch)  # sent again, it would be refused again
                    batch = []
                    continue
                else:
                    self._reason = f"collector unreachable ({url}: {error})"
                if self._closing:
                    return  # no waiting for a collector that fails at the end
                # The batch is kept and tried again after a wait that grows while
                # the collector stays away; meanwhile the queue's bound drops the rest.
                retry_s = min(RETRY_MAX_S, max(0.25, retry_s * 2))
                self._pause(retry_s)
                continue
            retry_s = 0.0
            with self._lock:
                if not self._given_up:
                    self._queued -= len(batch)
                    self.sent += len(batch)
            batch = []

    def _pause(self, seconds: float) -> None:
        """Wait `seconds` or until woken. Cleared before the check of _closing,
        which close() sets before it wakes: its wake-up is never lost."""
        self._wake.clear()
        if not self._closing:
            self._wake.wait(seconds)

    def _drop(self, batch: list[Event]) -> None:
        with self._lock:
            if not self._given_up:
                self._queued -= len(batch)
                self.dropped += len(batch)

    def close(self) -> None:
        """Send what is queued, for at most the shutdown time; count the rest as dropped."""
        self._closing = True
        self._wake.set()
        self._thread.join(self._shutdown_s + 0.5)
        with self._lock:
            # A request still under way after this is counted as dropped even
            # if it arrives: the count errs towards what may be missing.
            self._given_up = True
            self.dropped += self._queued
            self._queued = 0
            self._queue.clear()
        if not self._thread.is_alive() and isinstance(self._post, HttpPost):
            self._post.close()

    def report(self) -> str | None:
        """What the end of the session says on stderr, when events were dropped."""
        if not self.dropped:
            return None
        # No request failed: the queue overflowed while the collector, answering, kept up too slowly.
        why = self._reason or f"collector too slow ({self.endpoint.url})"
        return f"{self.dropped} event{'' if self.dropped == 1 else 's'} dropped: {why}"
