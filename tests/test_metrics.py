"""--metrics (tracer/export/metrics.py, tracer/session/exports.py): what is
counted from a known list of events, that every label stays within its
bounded set, the parsing of [ADDR:]PORT, and the server: scraped over HTTP, a
port in use refused before anything starts, a missing package said plainly."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from proctrace.cli import main
from proctrace.export.errors import ExportError
from proctrace.export.metrics import (
    EXIT_OUTCOMES,
    ListenAddress,
    ListenError,
    MetricCounts,
    MetricsServer,
    SessionCollector,
    metrics_registry,
    parse_listen,
)
from proctrace.model.events import CLONE_THREAD, EVENT_CLASSES, EVENT_KINDS, SIGNALS, ExecEvent
from proctrace.model.filters import FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session import exports as exports_module
from proctrace.session.exports import SessionExports, gauge_seed, require
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.synthetic import (
    INIT,
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
SNAPSHOT = [ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START), ProcInfo(INIT, 0, 0, b"init", [], 0)]


def oom_exit(ts: int, pid: int, start: int):  # type: ignore[no-untyped-def]
    ev = exit_(ts, pid, start, killed(signal.SIGKILL))
    ev.oom_killed = True
    return ev


def path_miss(ts: int, pid: int, start: int) -> ExecEvent:
    ev = execve(ts, pid, start, [b"as"], errno=errno.ENOENT, filename=b"/usr/local/bin/as")
    ev.path_search = True
    return ev


def workload() -> list:  # type: ignore[type-arg]
    """Four children of the shell: one exits 0 after a PATH search, one fails
    to exec (ENOENT) and exits 127, one is killed by SIGTERM, one by the OOM
    killer; a thread that comes and goes; an exec with an errno Python has no name for."""
    s = 10 * MS
    return [
        fork(1 * MS, 200), path_miss(2 * MS, 200, s), execve(3 * MS, 200, s, [b"as"]),
        exit_(4 * MS, 200, s), reap(5 * MS, 200),
        fork(6 * MS, 201), execve(7 * MS, 201, s, [b"nope"], errno=errno.ENOENT),
        exit_(8 * MS, 201, s, exited(127)), reap(9 * MS, 201, exited(127)),
        fork(10 * MS, 202), generate(11 * MS, 202, signal.SIGTERM), deliver(12 * MS, 202, s, signal.SIGTERM),
        exit_(13 * MS, 202, s, killed(signal.SIGTERM)),
        fork(14 * MS, 203), oom_exit(15 * MS, 203, s),
        fork(16 * MS, 204, flags=CLONE_THREAD), exit_(17 * MS, 204, SHELL_START, tgid=SHELL, process=False),
        execve(18 * MS, 205, s, [b"odd"], errno=4000),
    ]  # fmt: skip


def counted(events: list, snapshot: list[ProcInfo] = SNAPSHOT) -> MetricCounts:  # type: ignore[type-arg]
    counts = MetricCounts()
    counts.seed(snapshot)
    # In two batches, as a session hands them on: nothing may depend on a batch's bounds.
    counts.write(events[:7])
    counts.write(events[7:])
    return counts


def scrape(counts: MetricCounts, dropped: int | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a scrape, read back with prometheus-client's own parser."""
    collector = SessionCollector(counts, None if dropped is None else (lambda: dropped))
    text = generate_latest(metrics_registry(collector)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_events_exits_and_exec_failures_are_counted_from_the_events() -> None:
    samples = scrape(counted(workload()))
    assert samples[("proctrace_events_total", (("type", "fork"),))] == 5
    assert samples[("proctrace_events_total", (("type", "exec"),))] == 4
    assert samples[("proctrace_events_total", (("type", "exit"),))] == 5
    assert samples[("proctrace_events_total", (("type", "signal"),))] == 2
    assert samples[("proctrace_events_total", (("type", "reap"),))] == 2
    assert samples[("proctrace_events_total", (("type", "cred"),))] == 0
    # Process exits only: the thread's exit is no process ending.
    assert samples[("proctrace_process_exits_total", (("outcome", "exit_zero"),))] == 1
    assert samples[("proctrace_process_exits_total", (("outcome", "exit_nonzero"),))] == 1
    assert samples[("proctrace_process_exits_total", (("outcome", "signal"),))] == 1
    assert samples[("proctrace_process_exits_total", (("outcome", "oom"),))] == 1
    # The PATH miss is no failure; an errno without a name is "other".
    assert samples[("proctrace_exec_failures_total", (("errno", "ENOENT"),))] == 1
    assert samples[("proctrace_exec_failures_total", (("errno", "other"),))] == 1
    assert sum(v for (name, _), v in samples.items() if name == "proctrace_exec_failures_total") == 2


def test_the_live_process_gauge_starts_from_the_snapshot_and_follows_forks_and_exits() -> None:
    # The shell and init, plus five forks of which one is a thread; four processes ended.
    assert scrape(counted(workload()))[("proctrace_live_processes", ())] == 2 + 4 - 4
    assert scrape(counted(workload()[:1]))[("proctrace_live_processes", ())] == 3
    assert scrape(counted(workload(), snapshot=[]))[("proctrace_live_processes", ())] == 0


def test_the_gauge_starts_from_the_snapshot_only_for_a_session_of_the_whole_machine() -> None:
    assert gauge_seed(SNAPSHOT, FilterSpec(), command=False) == SNAPSHOT
    assert gauge_seed(SNAPSHOT, FilterSpec(kinds=frozenset({"exec"})), command=False) == SNAPSHOT
    # A command's tree, a selection by name or pid, a cgroup: the others are never seen to end.
    assert gauge_seed(SNAPSHOT, FilterSpec(), command=True) == []
    assert gauge_seed(SNAPSHOT, FilterSpec(comms=("make",)), command=False) == []
    assert gauge_seed(SNAPSHOT, FilterSpec(pids=(SHELL,)), command=False) == []
    assert gauge_seed(SNAPSHOT, FilterSpec(units=("nginx.service",)), command=False) == []


def test_losses_are_the_kernel_totals_by_class() -> None:
    counts = MetricCounts()
    counts.lost(1, 3, 3, SIGNALS)
    counts.lost(2, 2, 5, SIGNALS)
    samples = scrape(counts)
    assert samples[("proctrace_lost_events_total", (("class", "signal"),))] == 5
    assert samples[("proctrace_lost_events_total", (("class", "lifecycle"),))] == 0


def test_every_label_is_from_a_bounded_set_and_no_process_is_named() -> None:
    samples = scrape(counted(workload()), dropped=7)
    allowed = {
        "proctrace_events_total": ("type", set(EVENT_KINDS)),
        "proctrace_lost_events_total": ("class", set(EVENT_CLASSES)),
        "proctrace_process_exits_total": ("outcome", set(EXIT_OUTCOMES)),
        "proctrace_exec_failures_total": ("errno", {*errno.errorcode.values(), "other"}),
    }
    ours = [(name, labels) for name, labels in samples if name.startswith("proctrace_")]
    assert {name for name, _ in ours} >= {*allowed, "proctrace_live_processes", "proctrace_otlp_dropped_total"}
    for name, labels in ours:
        if name in allowed:
            label, values = allowed[name]
            assert [key for key, _ in labels] == [label], name
            assert labels[0][1] in values, (name, labels)
        else:
            assert labels == (), name
    assert samples[("proctrace_otlp_dropped_total", ())] == 7


def test_the_tracer_own_cpu_and_memory_are_exported() -> None:
    samples = scrape(MetricCounts())
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 0


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("9090", "127.0.0.1", 9090),
        ("0.0.0.0:9090", "0.0.0.0", 9090),
        ("[::1]:9090", "::1", 9090),
        ("localhost:1", "localhost", 1),
        ("127.0.0.1:65535", "127.0.0.1", 65535),
    ],
)
def test_listen_addresses_parse_with_localhost_the_default(text: str, host: str, port: int) -> None:
    assert parse_listen(text) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["", "0", "65536", "x", ":9090", "::1:9090", "[::1]9090", "[::1", "1.2.3.4:", "9090x"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ListenError):
        parse_listen(text)


def test_an_ipv6_address_prints_in_brackets() -> None:
    assert str(ListenAddress("::1", 9090)) == "[::1]:9090"
    assert str(ListenAddress("127.0.0.1", 9090)) == "127.0.0.1:9090"


def test_the_server_serves_the_counts_at_slash_metrics_and_stops() -> None:
    counts = counted(workload())
    server = MetricsServer(ListenAddress("127.0.0.1", 0), SessionCollector(counts))
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'proctrace_process_exits_total{outcome="oom"} 1.0' in text
        counts.write([fork(20 * MS, 300)])  # counted since: the next scrape sees it
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'proctrace_events_total{type="fork"} 6.0' in text
    finally:
        server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=10)


def test_the_server_listens_on_ipv6_loopback_when_asked() -> None:
    host = parse_listen("[::1]:9090").host
    server = MetricsServer(ListenAddress(host, 0), SessionCollector(counted(workload())))  # a free port
    try:
        text = urllib.request.urlopen(f"http://[::1]:{server.port}/metrics", timeout=10).read().decode()
        assert 'proctrace_process_exits_total{outcome="signal"} 1.0' in text
    finally:
        server.close()


def test_an_unknown_host_is_refused_with_a_message() -> None:
    with pytest.raises(ListenError, match=r"cannot serve metrics on no\.such\.host\.invalid:9090: "):
        MetricsServer(ListenAddress("no.such.host.invalid", 9090), SessionCollector(MetricCounts()))


def test_a_port_in_use_is_refused_with_a_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: Address already in use"):
            MetricsServer(ListenAddress("127.0.0.1", port), SessionCollector(MetricCounts()))


def test_the_command_line_exits_1_on_a_port_in_use_before_reading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["-r", str(RECORDING), "--json", "-o", str(out), "--metrics", str(port)])
    assert code == 1
    assert f"proctrace: cannot serve metrics on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not out.exists() or out.read_text() == ""


def test_a_missing_package_is_named_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(exports_module.NEEDS, "--metrics", ("no_such_module_xyz.sub", "metrics", "prometheus-client"))
    with pytest.raises(
        ExportError, match=r"--metrics needs the Python package prometheus-client.*proctrace\[metrics\]"
    ):
        require("--metrics")


def test_without_prometheus_client_the_command_says_so_and_exits_1() -> None:
    """In a fresh interpreter where the package cannot be imported: a message, no traceback."""
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'prometheus_client': raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from proctrace.cli import main\n"
        f"sys.exit(main(['-r', {str(RECORDING)!r}, '-o', {os.devnull!r}, '--metrics', '127.0.0.1:1']))\n"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert "proctrace: --metrics needs the Python package prometheus-client" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_replay_with_metrics_counts_the_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-r --metrics: the counts at the end of the replay are the recording's."""
    seen: list[MetricCounts] = []
    close = SessionExports.close

    def keep(self: SessionExports) -> None:
        assert self.counts is not None
        seen.append(self.counts)
        close(self)

    monkeypatch.setattr(SessionExports, "close", keep)
    out = tmp_path / "out.jsonl"
    with socket.socket() as probe:  # a port free a moment ago; nothing else binds ports in this suite
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["-r", str(RECORDING), "--json", "-o", str(out), "--metrics", f"127.0.0.1:{port}"]) == 0

    types = [json.loads(line)["type"] for line in out.read_text().splitlines()]
    (counts,) = seen
    assert {k: v for k, v in counts.events_by_type.items() if v} == {t: types.count(t) for t in set(types)}
