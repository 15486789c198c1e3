"""The exports of a session (--metrics, --otlp; tracer/export/): made before
the probes are attached, so that a port in use, a bad URL or a missing
package fails first; their sinks join the session's pipeline once its clock
and start snapshot exist; at its end, what the OTLP export dropped is said
and the metrics server stops. The same for live tracing and replay."""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import TYPE_CHECKING

from proctrace.export.errors import ExportError
from proctrace.export.metrics import MetricCounts, MetricsServer, SessionCollector, parse_listen
from proctrace.formats.text import safe
from proctrace.model.clock import Clock
from proctrace.model.filters import FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session.options import ExportOptions
from proctrace.session.sinks import Sink

if TYPE_CHECKING:
    from proctrace.export.otlp import Endpoint, OtlpSink

# The module an export imports, and the extra of pyproject.toml (and the
# package) that installs it. --otlp needs none: it writes its protobuf itself
# (tracer/export/otlp_wire.py).
NEEDS = {"--metrics": ("prometheus_client", "metrics", "prometheus-client")}


def require(flag: str) -> None:
    """Fail with a message saying what to install, instead of a traceback later."""
    module, extra, package = NEEDS[flag]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise ExportError(
            f"{flag} needs the Python package {package}, which is not installed: "
            f"pip install 'proctrace[{extra}]' (./scripts/setup installs it)"
        )


def gauge_seed(snapshot: list[ProcInfo], spec: FilterSpec, command: bool) -> list[ProcInfo]:
    """The processes alive at the start that the live-process gauge counts: all
    of them when the session sees the whole machine; none when it sees a
    command's tree or a filter's selection, whose other processes it would
    never see end."""
    return [] if command or spec.selects or spec.by_cgroup else snapshot


class SessionExports:
    """The metrics server and the OTLP export of one session, either or both."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.counts: MetricCounts | None = None
        self.server: MetricsServer | None = None
        self.otlp: OtlpSink | None = None
        self._endpoint: Endpoint | None = None
        if options.otlp is not None:
            from proctrace.export.otlp import parse_endpoint

            self._endpoint = parse_endpoint(options.otlp)
        if options.metrics is not None:
            address = parse_listen(options.metrics)
            require("--metrics")
            self.counts = MetricCounts()
            dropped = self._otlp_dropped if options.otlp is not None else None
            self.server = MetricsServer(address, SessionCollector(self.counts, dropped))

    def _otlp_dropped(self) -> int:
        return 0 if self.otlp is None else self.otlp.dropped

    def sinks(self, clock: Clock, seed: list[ProcInfo]) -> list[Sink]:
        """The sinks to add to the pipeline, made now that the session's clock
        exists; `seed` (gauge_seed) the processes the live-process gauge starts from."""
        sinks: list[Sink] = []
        if self.counts is not None:
            self.counts.seed(seed)
            sinks.append(self.counts)
        if self._endpoint is not None:
            from proctrace.export.otlp import OtlpSink

            self.otlp = OtlpSink(self._endpoint, clock)
            sinks.append(self.otlp)
        return sinks

    def close(self) -> None:
        """After the pipeline has closed (which flushed the OTLP queue)."""
        if self.otlp is not None:
            self.otlp.close()  # a second close only counts again what is left: nothing
            report = self.otlp.report()
            if report:
                print(f"proctrace: {safe(report)}", file=sys.stderr)
        if self.server is not None:
            self.server.close()

    def __enter__(self) -> SessionExports:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
