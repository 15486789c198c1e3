"""--otlp (tracer/export/otlp.py): the endpoint rule, the mapping of each event
type to a log record's attributes and body, the bounded queue that drops and
counts under a stalled or absent collector without ever making write() wait,
a shutdown that does not hang, and the whole path to a real HTTP receiver."""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from proctrace import __version__
from proctrace.cli import main
from proctrace.export import otlp as otlp_module
from proctrace.export.otlp import (
    SEVERITY_INFO,
    SEVERITY_WARN,
    Endpoint,
    OtlpError,
    OtlpSink,
    Rejected,
    export_request,
    log_attributes,
    parse_endpoint,
    severity,
)
from proctrace.export.otlp_wire import AttributeValue
from proctrace.formats.jsonl import event_json
from proctrace.model.clock import Clock
from proctrace.model.context import Credentials
from proctrace.model.events import (
    CLONE_THREAD,
    FOLD_RATE,
    CgroupEvent,
    CredEvent,
    Event,
    SignalSummaryEvent,
)

from tests.otlp_receiver import Receiver, attributes
from tests.synthetic import (
    MS,
    SHELL,
    SHELL_START,
    deliver,
    execve,
    exit_,
    exited,
    fork,
    generate,
    killed,
    reap,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests" / "data" / "golden" / "session.rec"
SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)
ENDPOINT = parse_endpoint("http://127.0.0.1:4318")
START = 10 * MS


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:4318", Endpoint("http://127.0.0.1:4318", "http", "127.0.0.1", 4318, "/v1/logs")),
        ("http://otel:4318/", Endpoint("http://otel:4318/", "http", "otel", 4318, "/v1/logs")),
        ("http://otel/custom/logs", Endpoint("http://otel/custom/logs", "http", "otel", 80, "/custom/logs")),
        ("https://otel", Endpoint("https://otel", "https", "otel", 443, "/v1/logs")),
        ("http://[::1]:4318/v1/logs", Endpoint("http://[::1]:4318/v1/logs", "http", "::1", 4318, "/v1/logs")),
    ],
)
def test_a_base_url_gets_v1_logs_and_a_full_one_is_kept(url: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(url) == endpoint


@pytest.mark.parametrize("url", ["ftp://otel:4318", "otel:4318", "http://", "http://otel:99999", "http://otel:x"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(OtlpError):
        parse_endpoint(url)


def decoded(body: bytes) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(body)


def reference(events: list[Event], resource: dict[str, AttributeValue], observed: int) -> bytes:
    """The same request built with opentelemetry-proto's generated classes."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    add_attributes(resource, resource_logs.resource.attributes)
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "proctrace", __version__
    for ev in events:
        record = scope_logs.log_records.add(
            time_unix_nano=CLOCK.wall_ns(ev.ts_ns), observed_time_unix_nano=observed, severity_number=severity(ev)
        )
        record.body.string_value = event_json(ev, CLOCK)
        add_attributes(log_attributes(ev), record.attributes)
    return request.SerializeToString()


def add_attributes(attrs: dict[str, AttributeValue], into: Any) -> None:
    for key, value in attrs.items():
        kv = into.add(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, str):
            kv.value.string_value = value
        else:
            kv.value.array_value.SetInParent()  # an empty array is still an array
            for item in value:
                kv.value.array_value.values.add(string_value=item)


def test_the_request_is_byte_for_byte_what_opentelemetry_proto_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_module.time, "time_ns", lambda: 1_700_000_123 * SEC)
    events = [case[1] for case in CASES]
    resource = {"service.name": "proctrace", "host.name": "h", "n": -5, "big": 1 << 62, "on": False, "none": []}
    assert export_request(events, CLOCK, resource) == reference(events, resource, 1_700_000_123 * SEC)


@pytest.mark.parametrize("value", ["", "é€", "x" * 300, 0, 1, 127, 128, 300, -1, -(1 << 63), (1 << 63) - 1,
                                   True, False, [], ["a", ""], ["b" * 200]])  # fmt: skip
def test_each_attribute_value_decodes_as_it_was(value: AttributeValue) -> None:
    resource = {"k": value}
    request = decoded(export_request([], CLOCK, resource))
    assert attributes(request.resource_logs[0].resource.attributes) == {"k": value}
    assert export_request([], CLOCK, resource) == reference([], resource, 0)


def common(ev: Event) -> dict[str, object]:
    return {
        "proctrace.event.type": ev.kind,
        "process.pid": ev.tgid,
        "thread.id": ev.pid,
        "process.parent_pid": ev.ppid,
        "process.command": ev.comm.decode(),
        "proctrace.uid": ev.uid,
    }


def summary() -> SignalSummaryEvent:
    return SignalSummaryEvent(
        50 * MS, 300, 300, SHELL, 0, b"spam", START, 0,
        reason=FOLD_RATE, signo=signal.SIGUSR1, target_pid=301, count=900,
    )  # fmt: skip


def cred_change() -> CredEvent:
    root = Credentials(0, 0, 0, 0, 0, 0, 0, 0, 0)
    user = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)
    return CredEvent(60 * MS, 300, 300, SHELL, 0, b"sshd", START, 0, syscall="setresuid", before=root, after=user)


def oom_exit() -> Event:
    ev = exit_(70 * MS, 400, START, killed(signal.SIGKILL), comm=b"hog")
    ev.oom_killed = True
    return ev


def path_miss() -> Event:
    ev = execve(3 * MS, 200, START, [b"as"], errno=errno.ENOENT, filename=b"/usr/local/bin/as")
    ev.path_search = True
    return ev


CASES: list[tuple[str, Event, dict[str, object], int]] = [
    ("fork", fork(1 * MS, 200), {"proctrace.fork.child_pid": 200, "proctrace.fork.child_tid": 200,
                                 "proctrace.fork.thread": False}, SEVERITY_INFO),
    ("thread", fork(1 * MS, 201, flags=CLONE_THREAD), {"proctrace.fork.child_pid": SHELL,
                                                       "proctrace.fork.child_tid": 201,
                                                       "proctrace.fork.thread": True}, SEVERITY_INFO),
    ("exec", execve(2 * MS, 200, START, [b"make", b"-j2"]),
     {"process.executable.path": "/usr/bin/make", "process.command_args": ["make", "-j2"]}, SEVERITY_INFO),
    ("failed exec", execve(2 * MS, 200, START, [b"nope"], errno=errno.EACCES),
     {"process.executable.path": "/usr/bin/nope", "process.command_args": ["nope"], "error.type": "EACCES",
      "proctrace.exec.path_search": False}, SEVERITY_WARN),
    ("PATH miss", path_miss(),
     {"process.executable.path": "/usr/local/bin/as", "process.command_args": ["as"], "error.type": "ENOENT",
      "proctrace.exec.path_search": True}, SEVERITY_INFO),
    ("exit 0", exit_(4 * MS, 200, START), {"proctrace.exit.process": True, "process.exit.code": 0}, SEVERITY_INFO),
    ("exit 3", exit_(4 * MS, 200, START, exited(3)), {"proctrace.exit.process": True, "process.exit.code": 3},
     SEVERITY_WARN),
    ("killed", exit_(4 * MS, 200, START, killed(signal.SIGTERM)),
     {"proctrace.exit.process": True, "proctrace.exit.signal": "SIGTERM"}, SEVERITY_WARN),
    ("oom", oom_exit(), {"proctrace.exit.process": True, "proctrace.exit.signal": "SIGKILL",
                         "proctrace.exit.oom_killed": True}, SEVERITY_WARN),
    ("thread exit", exit_(4 * MS, 201, SHELL_START, exited(1), tgid=SHELL, process=False),
     {"proctrace.exit.process": False, "process.exit.code": 1}, SEVERITY_INFO),
    ("generate", generate(5 * MS, 200, signal.SIGTERM),
     {"proctrace.signal.name": "SIGTERM", "proctrace.signal.stage": "generate", "proctrace.signal.target_pid": 200},
     SEVERITY_INFO),
    ("deliver", deliver(5 * MS, 200, START, signal.SIGTERM),
     {"proctrace.signal.name": "SIGTERM", "proctrace.signal.stage": "deliver", "proctrace.signal.target_pid": 200},
     SEVERITY_INFO),
    ("summary", summary(), {"proctrace.signal.name": "SIGUSR1", "proctrace.signal.target_pid": 301,
                            "proctrace.signal.count": 900, "proctrace.signal.folded": "rate_limit"}, SEVERITY_INFO),
    ("reap", reap(6 * MS, 200, exited(3)), {"proctrace.reap.pid": 200}, SEVERITY_INFO),
    ("cred", cred_change(), {"proctrace.cred.syscall": "setresuid"}, SEVERITY_INFO),
    ("cgroup", CgroupEvent(7 * MS, 1, 1, 0, 0, b"systemd", 1, 0, action="mkdir", target_id=9, path=b"/x.slice"),
     {"proctrace.cgroup.action": "mkdir", "proctrace.cgroup.path": "/x.slice"}, SEVERITY_INFO),
]  # fmt: skip


@pytest.mark.parametrize(("name", "event", "own", "severity"), CASES, ids=[case[0] for case in CASES])
def test_each_event_type_maps_to_semantic_attributes_and_its_json_line(
    name: str, event: Event, own: dict[str, object], severity: int
) -> None:
    assert log_attributes(event) == {**common(event), **own}
    request = decoded(export_request([event], CLOCK, {"service.name": "proctrace"}))
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    assert record.body.string_value == event_json(event, CLOCK)
    json.loads(record.body.string_value)
    assert record.time_unix_nano == CLOCK.wall_ns(event.ts_ns)
    assert record.severity_number == severity
    assert attributes(record.attributes) == {**common(event), **own}


def test_every_event_type_has_a_case() -> None:
    from proctrace.model.events import EVENT_KINDS

    assert {case[1].kind for case in CASES} == set(EVENT_KINDS)


def test_bytes_that_are_not_utf8_keep_their_escape_in_the_body_and_show_as_replacement_in_attributes() -> None:
    ev = execve(2 * MS, 200, START, [b"x\xff"], comm=b"bad\xfe")
    request = decoded(export_request([ev], CLOCK, {}))
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert json.loads(record.body.string_value)["comm"] == "bad\udcfe"
    attrs = attributes(record.attributes)
    assert attrs["process.command"] == "bad\ufffd"
    assert attrs["process.command_args"] == ["x\ufffd"]


def test_the_resource_names_the_service_host_and_kernel() -> None:
    sink = OtlpSink(ENDPOINT, CLOCK, post=lambda body, timeout: None)
    try:
        request = decoded(export_request([fork(1 * MS, 200)], CLOCK, sink._resource))
    finally:
        sink.close()
    resource = attributes(request.resource_logs[0].resource.attributes)
    assert resource["service.name"] == "proctrace"
    assert resource["os.type"] == "linux"
    assert resource["os.version"] == os.uname().release
    assert resource["host.name"] == os.uname().nodename
    assert request.resource_logs[0].scope_logs[0].scope.name == "proctrace"


class StalledCollector:
    """A post that blocks until released, noting which thread called it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.callers: list[threading.Thread] = []
        self.bodies: list[bytes] = []

    def __call__(self, body: bytes, timeout: float) -> None:
        self.callers.append(threading.current_thread())
        self.entered.set()
        self.release.wait(60)
        self.bodies.append(body)


def batch(n: int, base: int = 0) -> list[Event]:
    return [fork((base + i + 1) * MS, 1000 + base + i) for i in range(n)]


def test_under_a_stalled_collector_the_queue_drops_beyond_its_bound_and_counts() -> None:
    post = StalledCollector()
    sink = OtlpSink(ENDPOINT, CLOCK, post=post, queue_events=10, shutdown_s=5)
    sink.write(batch(4))
    sink._wake.set()  # hand the first batch to the sender now rather than on its timer
    assert post.entered.wait(30)
    # That batch is in flight and still counts against the bound: room for 6 more.
    sink.write(batch(4, 4))
    sink.write(batch(4, 8))  # 2 of these fit
    sink.write(batch(3, 12))  # none
    assert sink.dropped == 2 + 3
    post.release.set()
    sink.close()
    assert sink.dropped == 5
    assert sink.sent == 10
    assert threading.main_thread() not in post.callers  # write() never sent anything itself
    assert sink.report() == "5 events dropped: collector too slow (http://127.0.0.1:4318)"


def test_shutdown_gives_up_on_a_collector_that_never_answers() -> None:
    post = StalledCollector()  # never released
    sink = OtlpSink(ENDPOINT, CLOCK, post=post, shutdown_s=0.2)
    sink.write(batch(3))
    sink._wake.set()
    assert post.entered.wait(30)
    sink.write(batch(2, 3))
    sink.close()  # returns: the test would hang here otherwise
    assert sink.dropped == 5
    assert sink.sent == 0
    post.release.set()


def test_an_unreachable_collector_is_named_with_its_error() -> None:
    def refused(body: bytes, timeout: float) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    sink = OtlpSink(ENDPOINT, CLOCK, post=refused, queue_events=100)
    sink.write(batch(30))
    sink.close()
    assert sink.dropped == 30
    assert sink.report() == (
        "30 events dropped: collector unreachable (http://127.0.0.1:4318: [Errno 111] Connection refused)"
    )


def test_a_collector_that_does_not_answer_in_time_is_said_to_be_too_slow() -> None:
    def slow(body: bytes, timeout: float) -> None:
        raise TimeoutError("timed out")

    sink = OtlpSink(ENDPOINT, CLOCK, post=slow)
    sink.write(batch(4))
    sink.close()
    assert sink.report() == "4 events dropped: collector too slow (http://127.0.0.1:4318: no answer within 5 s)"


def test_a_request_the_collector_refuses_for_good_is_dropped_not_sent_again() -> None:
    calls: list[bytes] = []

    def bad_request(body: bytes, timeout: float) -> None:
        calls.append(body)
        raise Rejected(400, "Bad Request")

    sink = OtlpSink(ENDPOINT, CLOCK, post=bad_request)
    sink.write(batch(4))
    sink._wake.set()
    sink.close()
    assert len(calls) == 1 and sink.dropped == 4
    assert sink.report() == "4 events dropped: collector refused them (http://127.0.0.1:4318: HTTP 400 Bad Request)"


def test_a_collector_that_is_unavailable_for_now_gets_the_request_again() -> None:
    calls: list[bytes] = []
    second = threading.Event()

    def unavailable_once(body: bytes, timeout: float) -> None:
        calls.append(body)
        if len(calls) == 1:
            raise Rejected(503, "Service Unavailable")
        second.set()

    sink = OtlpSink(ENDPOINT, CLOCK, post=unavailable_once)
    sink.write(batch(3))
    sink._wake.set()
    assert second.wait(30)
    sink.close()
    assert sink.sent == 3 and sink.dropped == 0


def test_an_event_that_cannot_be_encoded_costs_its_batch_not_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = threading.Event()
    real = otlp_module.export_request

    def fails_on_forks_of_666(events: list[Event], clock: Clock, resource: dict[str, AttributeValue]) -> bytes:
        if any(ev.pid == SHELL and getattr(ev, "child_pid", 0) == 666 for ev in events):
            raise ValueError("a fault")
        return real(events, clock, resource)

    monkeypatch.setattr(otlp_module, "export_request", fails_on_forks_of_666)
    sink = OtlpSink(ENDPOINT, CLOCK, post=lambda body, timeout: sent.set())
    sink.write([fork(1 * MS, 666)])
    sink._wake.set()
    for _ in range(3000):  # until the sender has dropped that batch (a guard against hanging, not a limit)
        if sink.dropped:
            break
        sink._wake.set()
        time.sleep(0.01)
    sink.write(batch(2))
    sink._wake.set()
    assert sent.wait(30)
    sink.close()
    assert sink.dropped == 1 and sink.sent == 2
    assert sink.report() == "1 event dropped: could not encode them (ValueError: a fault)"


def test_a_collector_that_recovers_gets_the_batch_it_refused() -> None:
    calls: list[bytes] = []
    second = threading.Event()

    def flaky(body: bytes, timeout: float) -> None:
        calls.append(body)
        if len(calls) == 1:
            raise ConnectionResetError(104, "Connection reset by peer")
        second.set()

    sink = OtlpSink(ENDPOINT, CLOCK, post=flaky)
    sink.write(batch(5))
    sink._wake.set()
    assert second.wait(30)  # tried again after its wait, before the session ends
    sink.close()
    assert sink.dropped == 0 and sink.sent == 5
    assert len(calls) == 2 and calls[0] == calls[1]  # the same request, sent again
    assert sink.report() is None


def test_every_event_reaches_a_real_receiver_in_order_at_v1_logs() -> None:
    with Receiver() as receiver:
        sink = OtlpSink(parse_endpoint(receiver.url), CLOCK)
        events = batch(2500)  # more than one request holds
        for i in range(0, len(events), 100):
            sink.write(events[i : i + 100])
        sink.close()
        records = receiver.records()
        assert [r.body.string_value for r in records] == [event_json(ev, CLOCK) for ev in events]
        assert len(receiver.requests) >= 2
        assert set(receiver.paths) == {"/v1/logs"}
        assert set(receiver.content_types) == {"application/x-protobuf"}
    assert sink.dropped == 0 and sink.report() is None


def test_a_replay_sends_every_event_as_its_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    with Receiver() as receiver:
        assert main(["-r", str(RECORDING), "--json", "-o", str(out), "--otlp", receiver.url]) == 0
        bodies = [r.body.string_value for r in receiver.records()]
    lines = [line for line in out.read_text().splitlines() if json.loads(line)["type"] != "lost"]
    assert bodies == lines
    assert "dropped" not in capsys.readouterr().err


def test_a_replay_to_a_port_nothing_listens_on_ends_with_the_drops_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["-r", str(RECORDING), "--json", "-o", str(out), "--otlp", "http://127.0.0.1:9"]) == 0
    n = sum(1 for line in out.read_text().splitlines() if json.loads(line)["type"] != "lost")
    err = capsys.readouterr().err
    assert f"proctrace: {n} events dropped: collector unreachable (http://127.0.0.1:9: " in err
