"""`--metrics [ADDR:]PORT`: the session's counts for Prometheus.

Counting must cost the drain next to nothing, so MetricCounts is a Sink that
adds each batch into plain dicts and ints; prometheus-client's exposition
reads them only when /metrics is scraped, through SessionCollector. Calling a
prometheus Counter's inc() per event would take its lock for each of a
storm's ~11k events a second.

Every label has a bounded set of values: event types (EVENT_KINDS), event
classes (EVENT_CLASSES), exit outcomes (EXIT_OUTCOMES) and errno names (the
ones Python knows, else "other"). No pid, argv or comm label.
"""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proctrace.export.errors import ExportError
from proctrace.model.events import (
    CLONE_THREAD,
    EVENT_CLASSES,
    EVENT_KINDS,
    LIFECYCLE,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    errno_name,
)
from proctrace.model.procsnap import ProcInfo

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

EXIT_ZERO, EXIT_NONZERO, EXIT_SIGNAL, EXIT_OOM = "exit_zero", "exit_nonzero", "signal", "oom"
EXIT_OUTCOMES = (EXIT_ZERO, EXIT_NONZERO, EXIT_SIGNAL, EXIT_OOM)
OTHER_ERRNO = "other"  # an errno number Python has no name for: one label for all of them
DEFAULT_ADDR = "127.0.0.1"


class ListenError(ExportError, ValueError):
    """An --metrics address that cannot be parsed or bound."""


@dataclass(frozen=True)
class ListenAddress:
    host: str  # an IPv4 or IPv6 address or a host name; IPv6 without its brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """'9090' -> 127.0.0.1:9090; '0.0.0.0:9090', '[::1]:9090', 'localhost:9090'.
    Localhost unless told otherwise: the counts say what runs on the host."""
    host, port_text = DEFAULT_ADDR, text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ListenError(f"not [ADDR]:PORT: {text!r} (try [::1]:9090)")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ListenError(f"an IPv6 address goes in brackets: [{host}]:{port_text}")
    if not host:
        raise ListenError(f"no address before the port: {text!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 1 << 16:
        raise ListenError(f"not a port: {port_text!r} (1-65535)")
    return ListenAddress(host, int(port_text))


def exit_outcome(ev: ExitEvent) -> str:
    """How a process ended, as a bounded label: the OOM killer comes first, as
    its SIGKILL would otherwise count as any signal."""
    if ev.oom_killed:
        return EXIT_OOM
    status = ev.status
    if status.signo:
        return EXIT_SIGNAL
    return EXIT_ZERO if status.exit_code == 0 else EXIT_NONZERO


def errno_label(err: int) -> str:
    return errno_name(err) if err in errno_mod.errorcode else OTHER_ERRNO


class MetricCounts:
    """A Sink that counts what the session shows (after its filter), for the
    collector to read at scrape time. Written by the session's thread only; a
    scrape copies each dict, which CPython does atomically."""

    shows_status = False

    def __init__(self) -> None:
        self.events_by_type: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.lost_by_class: dict[str, int] = dict.fromkeys(EVENT_CLASSES, 0)
        self.exits_by_outcome: dict[str, int] = dict.fromkeys(EXIT_OUTCOMES, 0)
        self.exec_failures: dict[str, int] = {}
        self.live: set[int] = set()

    def seed(self, snapshot: Iterable[ProcInfo]) -> None:
        """The processes alive at the start, which the live-process gauge starts
        from. A session that selects only some processes seeds none: the
        others would never be seen to end."""
        self.live.update(p.pid for p in snapshot)

    def write(self, events: list[Event]) -> None:
        by_type, live = self.events_by_type, self.live
        for ev in events:
            kind = ev.kind
            by_type[kind] = by_type.get(kind, 0) + 1
            # The kinds are tested by class, not attribute, so that each event
            # pays one type() for the kinds that need nothing more.
            cls = type(ev)
            if cls is ForkEvent:
                if not ev.clone_flags & CLONE_THREAD:  # type: ignore[attr-defined]
                    live.add(ev.child_tgid)  # type: ignore[attr-defined]
            elif cls is ExitEvent:
                if ev.process_exit:  # type: ignore[attr-defined]
                    live.discard(ev.tgid)
                    outcome = exit_outcome(ev)  # type: ignore[arg-type]
                    self.exits_by_outcome[outcome] += 1
            elif cls is ExecEvent and ev.errno and not ev.path_search:  # type: ignore[attr-defined]
                # A PATH search's misses are not failures (tracer/model/path_search.py).
                label = errno_label(ev.errno)  # type: ignore[attr-defined]
                self.exec_failures[label] = self.exec_failures.get(label, 0) + 1

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self.lost_by_class[event_class] = total

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class SessionCollector:
    """A prometheus-client collector (its `collect` protocol) that reads
    MetricCounts, and the OTLP export's drops when there is one."""

    def __init__(self, counts: MetricCounts, otlp_dropped: Callable[[], int] | None = None) -> None:
        self.counts = counts
        self.otlp_dropped = otlp_dropped

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = self.counts

        def counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=[label])
            for value, n in sorted(values.copy().items()):
                family.add_metric([value], n)
            return family

        yield counter("proctrace_events", "Events the session showed, by type.", "type", counts.events_by_type)
        yield counter(
            "proctrace_lost_events",
            "Events the kernel could not hand over, by class (each class has its own buffer).",
            "class",
            counts.lost_by_class,
        )
        yield counter(
            "proctrace_process_exits",
            "Processes that ended, by outcome: exit_zero, exit_nonzero, signal, oom.",
            "outcome",
            counts.exits_by_outcome,
        )
        yield counter(
            "proctrace_exec_failures",
            "Failed execs by errno name, PATH-search misses excluded.",
            "errno",
            counts.exec_failures,
        )
        yield GaugeMetricFamily(
            "proctrace_live_processes",
            "Processes alive: at the start, plus those seen forked, less those seen exit.",
            value=len(counts.live),
        )
        if self.otlp_dropped is not None:
            yield CounterMetricFamily(
                "proctrace_otlp_dropped",
                "Events not exported over OTLP: the queue was full or the collector could not take them.",
                value=self.otlp_dropped(),
            )


def metrics_registry(collector: SessionCollector) -> Any:
    """A registry of the session's metrics and the tracer's own CPU seconds and
    RSS (process_cpu_seconds_total, process_resident_memory_bytes, ...), without
    prometheus-client's default Python collectors."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    registry.register(collector)  # type: ignore[arg-type]
    return registry


class MetricsServer:
    """/metrics on its own thread (prometheus-client's HTTP server), bound
    when made, so that a port in use fails before anything is attached."""

    def __init__(self, address: ListenAddress, collector: SessionCollector) -> None:
        from prometheus_client import start_http_server

        self.address = address
        try:
            self._server: WSGIServer
            self._server, self._thread = start_http_server(address.port, address.host, metrics_registry(collector))
        except OSError as exc:
            raise ListenError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None

    @property
    def port(self) -> int:
        """The port bound (the one asked for; tests ask for 0 to get a free one)."""
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
