"""--metrics and --otlp on a live session with real BPF: /metrics scraped while
a workload the test starts runs agrees with the session's own --json output;
every event of a workload reaches a local OTLP/HTTP receiver as its --json
line; a collector that is down or stalls costs the session neither its end
nor its exit status, and the drops are said.

Every session runs the workload as its command (-- COMMAND), so it sees only
the processes the test started; the receivers listen on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proctrace.export.otlp import QUEUE_EVENTS
from prometheus_client.parser import text_string_to_metric_families

from tests.live.conftest import ROOT
from tests.otlp_receiver import Receiver, attributes

pytestmark = pytest.mark.live

KINDS = {"signal_summary": "signal"}  # --json's type -> the event kind the metrics count by


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def workload_script(tmp_path: Path, n: int) -> tuple[Path, Path, Path]:
    """A shell that runs `n` rounds of a success, an exit 1 and an exit 3, an
    `env true` (a PATH search: misses that are no failures), an exec of a file
    that does not exist, a sleep killed by SIGKILL, and keeps one sleep alive;
    then says it is done and waits on a FIFO (without starting a process)
    until the test lets it end."""
    done, fifo = tmp_path / "done", tmp_path / "go"
    os.mkfifo(fifo)
    script = tmp_path / "work.sh"
    script.write_text(
        f"i=0\nwhile [ $i -lt {n} ]; do /bin/true; /bin/false; /bin/sh -c 'exit 3'; i=$((i+1)); done\n"
        "env true\n"
        "/nonexistent/proctrace-test-missing 2>/dev/null\n"
        "/bin/sleep 60 & victim=$!; kill -KILL $victim; wait $victim\n"
        "/bin/sleep 60 & keep=$!\n"
        f": > {done}\n"
        f"read _ < {fifo}\n"
        "kill -TERM $keep; wait $keep\n"
        "exit 0\n"
    )
    return script, done, fifo


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def ours(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, dict[str, float]]:
    """proctrace_* samples as {metric: {label value: count}}, zeros left out."""
    out: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        if name.startswith("proctrace_") and value:
            out.setdefault(name, {})[labels[0][1] if labels else ""] = value
    return out


def expected_from_json(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """What the metrics should say, from the session's own --json lines."""
    by_type = Counter(KINDS.get(e["type"], e["type"]) for e in events if e["type"] != "lost")
    exits: Counter[str] = Counter()
    live: set[int] = set()
    for e in events:
        if e["type"] == "fork" and e["child_tgid"] != e["tgid"]:
            live.add(e["child_tgid"])
        if e["type"] == "exit" and e["process_exit"]:
            live.discard(e["tgid"])
            if e["oom_killed"]:
                exits["oom"] += 1
            elif e["signal"]:
                exits["signal"] += 1
            else:
                exits["exit_zero" if e["exit_code"] == 0 else "exit_nonzero"] += 1
    failures = Counter(e["errno"] for e in events if e["type"] == "exec" and e["errno"] and not e["path_search"])
    expected: dict[str, dict[str, float]] = {
        "proctrace_events_total": dict(by_type),
        "proctrace_process_exits_total": dict(exits),
        "proctrace_exec_failures_total": dict(failures),
    }
    if live:
        expected["proctrace_live_processes"] = {"": len(live)}
    return {name: values for name, values in expected.items() if values}


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_metrics_scraped_during_a_session_match_its_json(tmp_path: Path) -> None:
    n = 20
    script, done, fifo = workload_script(tmp_path, n)
    out = tmp_path / "events.jsonl"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", "--json", "-o", str(out), "--metrics", str(port), "--", "sh", str(script)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(done, proc)
        # The last events reach the sinks a drain and a reorder window later:
        # scrape until two scrapes a second apart agree.
        before = ours(scrape(port))
        while True:
            time.sleep(1.0)
            now = ours(scrape(port))
            if now == before:
                break
            before = now
        events = [json.loads(line) for line in out.read_text().splitlines()]
        assert now == expected_from_json(events)
        # What the workload did, as the metrics count it.
        exits = now["proctrace_process_exits_total"]
        assert exits["exit_nonzero"] >= 2 * n  # /bin/false and exit 3, each round
        assert exits["exit_zero"] >= n
        assert exits["signal"] == 1  # the sleep killed by SIGKILL
        assert now["proctrace_exec_failures_total"] == {"ENOENT": 1}  # the missing file; not env's PATH misses
        assert now["proctrace_live_processes"] == {"": 1}  # the sleep kept alive
        assert any(e["type"] == "exec" and e["path_search"] for e in events)  # env did search PATH
        samples = scrape(port)
        assert samples[("process_cpu_seconds_total", ())] > 0
        assert samples[("process_resident_memory_bytes", ())] > 0
    finally:
        with open(fifo, "w") as release:
            release.write("\n")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with pytest.raises(OSError):  # the server ended with the session
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_a_port_in_use_stops_the_session_before_it_attaches(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "proctrace", "--metrics", str(port), "--", "/bin/true"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "proctrace: tracing" not in done.stderr  # nothing was attached


@dataclass
class Traced:
    done: subprocess.CompletedProcess[str]
    events: list[dict[str, Any]]
    seconds: float  # how long the session took
    peak_rss_kb: int  # GNU time's %M of proctrace

    @property
    def shown(self) -> int:
        return sum(1 for e in self.events if e["type"] != "lost")


def run_traced(tmp_path: Path, *options: str, n: int = 50) -> Traced:
    """A session over a workload of 2*`n` short processes, under GNU time."""
    out, rss = tmp_path / "events.jsonl", tmp_path / "rss"
    work = f"i=0; while [ $i -lt {n} ]; do /bin/true; /bin/sh -c 'exit 2'; i=$((i+1)); done"
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m", "proctrace", "--json", "-o", str(out),
         *options, "--", "sh", "-c", work],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    took = time.monotonic() - started
    events = [json.loads(line) for line in out.read_text().splitlines()]
    return Traced(done, events, took, int(rss.read_text().split()[-1]))


def test_every_event_of_a_workload_reaches_an_otlp_receiver_as_its_json_line(tmp_path: Path) -> None:
    with Receiver() as receiver:
        traced = run_traced(tmp_path, "--otlp", receiver.url)
        records = receiver.records()
    done, events = traced.done, traced.events
    assert done.returncode == 0, done.stderr
    assert "dropped" not in done.stderr
    lines = [json.dumps(e, separators=(",", ":")) for e in events if e["type"] != "lost"]
    bodies = [r.body.string_value for r in records]
    assert [json.loads(b) for b in bodies] == [json.loads(line) for line in lines]
    assert len(bodies) > 250  # 100 processes' forks, execs, exits, reaps and SIGCHLDs
    # The mapping, checked on the live records against their own bodies.
    for record in records:
        body, attrs = json.loads(record.body.string_value), attributes(record.attributes)
        assert attrs["process.pid"] == body["tgid"] and attrs["process.parent_pid"] == body["ppid"]
        if body["type"] == "exec" and not body["errno"]:
            assert attrs["process.executable.path"] == body["filename"]
            assert attrs["process.command_args"] == body["argv"]
        if body["type"] == "exit" and body["exit_code"] is not None:
            assert attrs["process.exit.code"] == body["exit_code"]
    assert set(receiver.paths) == {"/v1/logs"}
    resource_attrs = attributes(receiver.requests[0].resource_logs[0].resource.attributes)
    assert resource_attrs["service.name"] == "proctrace" and resource_attrs["os.version"] == os.uname().release


def test_a_collector_that_is_down_costs_neither_the_end_nor_the_exit_status(tmp_path: Path) -> None:
    traced = run_traced(tmp_path, "--otlp", f"http://127.0.0.1:{free_port()}")
    assert traced.done.returncode == 0, traced.done.stderr
    said = f"proctrace: {traced.shown} events dropped: collector unreachable (http://127.0.0.1:"
    assert said in traced.done.stderr
    assert "Connection refused" in traced.done.stderr
    assert traced.seconds < 30, f"the session took {traced.seconds:.1f} s to end"


def test_a_stalled_collector_bounds_memory_and_the_end(tmp_path: Path) -> None:
    """A receiver that takes each request and never answers, under more events
    than the queue holds: the session still ends within the shutdown limit,
    what it could not send is counted, and its memory stays within the queue's
    bound of a session without --otlp."""
    n = 3000  # 6000 processes: ~30k events, beyond the queue's 20k
    plain = run_traced(tmp_path, n=n)
    with Receiver(stall=True) as receiver:
        stalled = run_traced(tmp_path, "--otlp", receiver.url, n=n)
    done = stalled.done
    assert done.returncode == 0, done.stderr
    assert stalled.shown > QUEUE_EVENTS
    assert "events dropped: collector too slow (http://127.0.0.1:" in done.stderr
    dropped = int(done.stderr.split(" events dropped: collector ")[0].rsplit("proctrace: ", 1)[1])
    # All but what one request carried before the receiver stalled it: at least everything beyond the queue.
    assert stalled.shown - QUEUE_EVENTS <= dropped <= stalled.shown
    assert stalled.seconds < plain.seconds + 30, f"{stalled.seconds:.1f} s against {plain.seconds:.1f} s"
    # The queue's bound is ~20k events of a few hundred bytes each.
    assert stalled.peak_rss_kb < plain.peak_rss_kb + 64 * 1024, (stalled.peak_rss_kb, plain.peak_rss_kb)


def test_a_plain_live_session_imports_no_export_package(tmp_path: Path) -> None:
    """The packages of --metrics (and opentelemetry, which --otlp does not
    need) stay out of a session that does not ask for them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "proctrace", "-o", os.devnull, "--", "/bin/true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "proctrace.session.live" in modules  # the witness: this was a live session
    assert not {m for m in modules if m.split(".")[0] in ("prometheus_client", "opentelemetry", "google")}
