"""A small OTLP/HTTP logs receiver for tests: an http.server on 127.0.0.1 that
decodes each ExportLogsServiceRequest with opentelemetry-proto, as a
collector would, and keeps the log records. It can also stall (hold every
request without answering) to play a collector that is too slow."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


class Receiver:
    def __init__(self, *, stall: bool = False) -> None:
        self.requests: list[ExportLogsServiceRequest] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        self.release = threading.Event()  # set: a stalled receiver answers
        self.stall = stall
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.stall:
                    receiver.release.wait(60)
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(request)
                    receiver.paths.append(self.path)
                    receiver.content_types.append(self.headers["Content-Type"])
                reply = ExportLogsServiceResponse().SerializeToString()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a sender that gave up on a stalled answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def records(self) -> list[Any]:
        """Every log record received, in the order received."""
        with self._lock:
            return [
                record
                for request in self.requests
                for resource_logs in request.resource_logs
                for scope_logs in resource_logs.scope_logs
                for record in scope_logs.log_records
            ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attributes(key_values: Any) -> dict[str, Any]:
    """OTLP KeyValues as a dict of plain values (arrays of strings as lists)."""
    out: dict[str, Any] = {}
    for kv in key_values:
        kind = kv.value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, kind)
    return out
