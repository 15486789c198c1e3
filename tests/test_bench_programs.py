"""The bench as a program: its entry points start, its results never land in a
tracked file, and the programs it runs (the Python storm, the two readers, the
shipped C and bpftrace sources) do what the bench relies on. No root, no BPF."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from proctrace.bench import package_file, results
from proctrace.bench.cli import parser
from proctrace.bench.flood import Flood
from proctrace.bench.storm import Storm, parse_storm_line

from tests.environment import requires
from tests.test_recording import every_kind, record

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=60)


def test_python_m_proctrace_bench_help_runs_and_names_the_results_option():
    done = run_module("proctrace.bench", "--help")
    assert done.returncode == 0, done.stderr
    assert "--results FILE" in done.stdout
    assert "--quick" in done.stdout


def test_python_m_proctrace_bench_soak_help_runs():
    done = run_module("proctrace.bench.soak", "--help")
    assert done.returncode == 0, done.stderr
    assert "--processes" in done.stdout


def test_out_is_kept_as_an_alias_of_results():
    assert parser().parse_args(["--out", "x.json"]).results == Path("x.json")
    assert parser().parse_args(["--results", "y.json"]).results == Path("y.json")


def test_the_default_results_file_is_in_the_checkout_and_ignored_by_git():
    requires(shutil.which("git") is not None and (ROOT / ".git").exists(), "git and a git checkout")
    path = results.default_results_path()
    assert results.source_checkout() == ROOT
    assert path.is_relative_to(ROOT)
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
    assert ignored.returncode == 0, f"{path} is not ignored by git: a bench run would leave the checkout modified"


def test_installed_outside_a_checkout_results_go_to_the_xdg_state_directory(monkeypatch):
    monkeypatch.setattr(results, "source_checkout", lambda: None)
    assert results.default_results_path({"XDG_STATE_HOME": "/var/x"}) == Path("/var/x/proctrace/bench-results.json")
    fallback = Path.home() / ".local" / "state" / "proctrace" / "bench-results.json"
    assert results.default_results_path({}) == fallback


def test_the_bench_ships_its_workloads_and_its_bpftrace_program():
    assert b'"spawned %ld failed %ld seconds %.6f\\n"' in package_file("storm.c")
    assert b"PROGRESS_FILE" in package_file("spawner.c")
    # The bench takes bpftrace as ready when this line appears (tracers.start_tracer).
    assert b'BEGIN { printf("READY\\n"); }' in package_file("capture.bt")


def test_the_flood_is_shipped_and_compiles_and_every_part_reports(tmp_path):
    """flood.c, built as the bench builds it, run untraced around the real C storm
    (a short one): the storm, the kill loop and the loop under strace each report."""
    assert b"sent %ld seconds %.6f sender %d target %d" in package_file("flood.c")
    requires(shutil.which("gcc") is not None or shutil.which("cc") is not None, "a C compiler")
    requires(shutil.which("strace") is not None, "strace (scripts/test installs it)")
    storm = Storm(tmp_path)
    assert storm.kind == "C"
    workload = Flood(storm, shutil.which("strace"))
    assert workload.available, workload.why_not
    result = workload.run(0.2)
    assert workload.shown(0.2).startswith(f"ptbench-flood 0.2 {shutil.which('strace')} ptbench-storm 2 0.2 ")
    assert result.storm.failed == 0
    assert len(result.storm.pids) == result.storm.spawned > 0
    assert result.kill.sent > 0
    assert result.kill.sender != result.kill.target
    assert result.syscalls is not None and result.syscalls.calls > 0


def test_the_flood_without_strace_runs_the_kill_loop_and_the_storm(tmp_path):
    requires(shutil.which("gcc") is not None or shutil.which("cc") is not None, "a C compiler")
    workload = Flood(Storm(tmp_path), strace=None)
    result = workload.run(0.1)
    assert "-" in workload.argv(0.1)
    assert result.syscalls is None
    assert result.kill.sent > 0


def test_the_python_storm_reports_as_the_c_storm_does(tmp_path):
    done = run_module("proctrace.bench.pystorm", "2", "0.3", "/bin/true", str(tmp_path / "pids"))
    assert done.returncode == 0, done.stderr
    spawned, failed, seconds = parse_storm_line(done.stdout)
    pids = [int(p) for i in range(2) for p in (tmp_path / f"pids.{i}").read_text().split()]
    assert (len(pids), len(set(pids)), failed) == (spawned, spawned, 0)
    assert seconds > 0


def test_the_readers_count_the_recordings_events_and_lines(tmp_path):
    path = tmp_path / "session.jsonl"
    events = every_kind(0) + every_kind(1)
    record(path, [events])
    lines = len(path.read_text().splitlines())  # header, events and trailer
    proctrace = run_module("proctrace.bench.readers", "proctrace", str(path))
    plain = run_module("proctrace.bench.readers", "plain", str(path))
    assert (proctrace.returncode, plain.returncode) == (0, 0), proctrace.stderr + plain.stderr
    assert int(proctrace.stdout) == len(events)
    assert int(plain.stdout) == lines


def test_an_unknown_reader_is_a_usage_error():
    done = run_module("proctrace.bench.readers", "fast", "/nonexistent")
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_the_process_table_soak_counts_every_process_it_fed(capsys):
    from proctrace.bench import table_soak

    assert table_soak.main(["--processes", "3000", "--keep", "100"]) == 0
    assert "aggregates counted 3,000 (31 non-zero exits)" in capsys.readouterr().out
