"""The flood section: the storm inside a signal flood (proctrace.bench.flood),
traced the way the README traces a command,

    proctrace --json -o FILE -- ptbench-flood SECONDS strace ptbench-storm ...

against the same flood untraced, and once more with --all-signals.

Run-a-command mode rather than system-wide, because then only the flood's tree
submits events: every event lost, every signal folded in the kernel and every
signal streamed is the flood's, so the kill loop's signals add up exactly, and
the neighbours of a shared machine (whose own test floods run at the same
time) cannot fill proctrace's buffers and pass for the flood's cost. It is
what the overload section does, for the same reason.

What is reported, per configuration: the storm's lifecycle events received
against the exact count of four per spawn, and the lifecycle events reported
lost (both must be 0); the signal events streamed, folded in the kernel
(`signal_summary` records: the rate limit, ptrace stops) and reported lost;
the kill loop's kill() calls against what became of them; and the storm's
rate against the untraced floods either side of the same repetition (the
configurations are interleaved, as in the timed section, and medians taken).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proctrace.bench import BenchError, progress
from proctrace.bench.counting import json_records, parse_summary, storm_event_kind
from proctrace.bench.flood import Flood, FloodResult
from proctrace.bench.machine import Watch, cpu_seconds
from proctrace.bench.results import storm_summary
from proctrace.bench.storm import KINDS
from proctrace.bench.tracers import command_session

UNTRACED = "untraced"
DEFAULT = "proctrace"
ALL_SIGNALS = "proctrace --all-signals"
TRACED_ARGS = {DEFAULT: [], ALL_SIGNALS: ["--all-signals"]}
LIFECYCLE, SIGNAL = "lifecycle", "signal"
KILL_SIGNAL = "SIGUSR1"


@dataclass
class FloodAccount:
    """What one or more traced floods saw, as counts that add up across runs."""

    runs: int = 0
    spawned: int = 0
    lifecycle_expected: int = 0  # the storm children's: a fork, exec, exit and reap each
    lifecycle_received: int = 0
    lifecycle_lost: int = 0  # `lost` records of class lifecycle
    signal_lost: int = 0  # `lost` records of class signal
    signals_streamed: int = 0  # signal events of the whole tree, one by one
    folded_rate_limit: int = 0  # signal events counted in the kernel (signal_summary) ...
    folded_ptrace_stop: int = 0  # ... by reason
    summaries: int = 0  # signal_summary records
    kill_sent: int = 0  # the kill loop's kill() calls
    kill_streamed: int = 0  # its SIGUSR1s streamed as generate events
    kill_suppressed: int = 0  # its SIGUSR1s counted by the rate limit where generated
    kill_unaccounted: int = 0  # neither streamed, suppressed, nor within the signals lost (see account_flood)
    syscalls: int = 0  # getppid() calls under strace: two ptrace stops each at least
    events_reported: int = 0  # proctrace's closing line: N events, M lost
    lost_reported: int = 0

    @property
    def lifecycle_missing(self) -> int:
        return self.lifecycle_expected - self.lifecycle_received

    @property
    def kill_gap(self) -> int:
        """kill() calls neither streamed nor suppressed: they must be among the signals lost."""
        return self.kill_sent - self.kill_streamed - self.kill_suppressed

    def __add__(self, other: FloodAccount) -> FloodAccount:
        return FloodAccount(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(FloodAccount)))

    def as_json(self) -> dict[str, int]:
        return dataclasses.asdict(self) | {"lifecycle_missing": self.lifecycle_missing, "kill_gap": self.kill_gap}


def account_flood(lines: Iterable[str], result: FloodResult, summary: tuple[int, int] | None) -> FloodAccount:
    """One traced flood's account, from proctrace's JSON lines, the flood's own
    reports and proctrace's closing line.

    The kill loop's signals: each kill() is one signal_generate, streamed or
    counted by the rate limit; when signal events were lost, some of the
    kill loop's may be among them, but never more than were lost (that count
    also holds the tree's other signals, so it bounds, and is exact only at 0).
    """
    kill = result.kill
    account = FloodAccount(runs=1, spawned=result.storm.spawned, kill_sent=kill.sent)
    account.lifecycle_expected = len(KINDS["proctrace"]) * result.storm.spawned
    account.syscalls = result.syscalls.calls if result.syscalls else 0
    if summary is not None:
        account.events_reported, account.lost_reported = summary
    pids = result.storm.pids
    for record in json_records(lines, '"type"'):
        kind = record.get("type")
        if kind == "lost":
            # A report without a class (an older proctrace) is taken as the lifecycle's: the safe side.
            if record.get("class", LIFECYCLE) == SIGNAL:
                account.signal_lost += record.get("count", 0)
            else:
                account.lifecycle_lost += record.get("count", 0)
        elif kind == "signal":
            account.signals_streamed += 1
            account.kill_streamed += is_kill_loops(record, kill.sender, kill.target)
        elif kind == "signal_summary":
            count = record.get("count", 0)
            account.summaries += 1
            if record.get("reason") == "ptrace_stop":
                account.folded_ptrace_stop += count
            elif record.get("reason") == "rate_limit":
                account.folded_rate_limit += count
                if is_kill_loops(record, kill.sender, kill.target):
                    account.kill_suppressed += count
        elif storm_event_kind(record, pids) is not None:
            account.lifecycle_received += 1
    gap = account.kill_gap
    account.kill_unaccounted = max(gap - account.signal_lost, 0) + max(-gap, 0)
    return account


def is_kill_loops(record: dict[str, Any], sender: int, target: int) -> bool:
    """A signal event or summary of the kill loop's SIGUSR1, where it was generated."""
    return (
        record.get("stage") == "generate"
        and record.get("signal") == KILL_SIGNAL
        and record.get("sender_pid") == sender
        and record.get("target_pid") == target
    )


def traced_flood(flood: Flood, seconds: float, workdir: Path, args: list[str]) -> tuple[dict[str, Any], FloodAccount]:
    """One flood under `proctrace --json -o FILE ARGS -- FLOOD`: its rep (rates,
    start-up, the neighbours' share) and its account."""
    out, report = workdir / "flood.json", workdir / "flood.out"
    with command_session(["--json", "-o", str(out), *args], flood.argv(seconds), report) as tracer:
        watch = Watch(tracer.pid)
        # proctrace is reaped before the watch ends, so all its CPU time, loading
        # the probes too, comes back in our children's; what it used before the
        # watch began is not the neighbours' and is taken out again.
        before = cpu_seconds(tracer.pid) or 0.0
        tracer.wait_exit(seconds + 120)  # proctrace ends when the flood does
        disturbance = watch.finish(-before, recheck_tracers=False)
        code = tracer.stop()
    summary = parse_summary(tracer.stderr)
    if code != 0 or summary is None:
        raise BenchError(f"proctrace {' '.join(args)} -- FLOOD: exit {code}: {tracer.stderr.strip()[-500:]}")
    result = flood.collect(report.read_text(errors="replace"))
    with open(out, errors="replace") as f:
        account = account_flood(f, result, summary)
    out.unlink()
    return flood_rep(result) | disturbance | {"ready_s": tracer.ready_s}, account


def untraced_flood(flood: Flood, seconds: float) -> dict[str, Any]:
    watch = Watch(None)
    result = flood.run(seconds)
    return flood_rep(result) | watch.finish(0.0)


def flood_rep(result: FloodResult) -> dict[str, Any]:
    return {
        "rate": result.storm.rate,
        "spawned": result.storm.spawned,
        "kill_rate": result.kill.rate,
        "syscall_rate": result.syscalls.rate if result.syscalls else None,
    }


def run_flood(flood: Flood, reps: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """The flood section: `reps` interleaved repetitions of untraced, proctrace
    (and in the first, proctrace --all-signals: one run shows what folding
    saves), closed by one more untraced run."""
    if not flood.available:
        return {"available": False, "reason": flood.why_not}
    runs: dict[str, list[dict[str, Any]]] = {UNTRACED: [], DEFAULT: [], ALL_SIGNALS: []}
    accounts: dict[str, FloodAccount] = {DEFAULT: FloodAccount(), ALL_SIGNALS: FloodAccount()}
    for rep in range(reps):
        for name in (UNTRACED, DEFAULT, ALL_SIGNALS) if rep == 0 else (UNTRACED, DEFAULT):
            progress(f"flood rep {rep + 1}/{reps}: {name}")
            if name == UNTRACED:
                runs[name].append(untraced_flood(flood, seconds))
                continue
            try:
                run, account = traced_flood(flood, seconds, workdir, TRACED_ARGS[name])
            except BenchError as exc:
                progress(f"  {name} failed: {exc}")
                runs[name].append({"rate": None, "error": str(exc)[:500]})
                continue
            runs[name].append(run)
            accounts[name] += account
    progress("flood: closing untraced run")
    runs[UNTRACED].append(untraced_flood(flood, seconds))
    return flood_document(runs, accounts, reps, seconds, flood.strace, flood.shown(seconds))


def flood_document(
    runs: dict[str, list[dict[str, Any]]],
    accounts: dict[str, FloodAccount],
    reps: int,
    seconds: float,
    strace: str | None,
    command: str,
) -> dict[str, Any]:
    """The section's figures for the results document."""
    rates = storm_summary(runs)
    # The flood's own loops, traced and not: what a signal and a ptrace stop cost them.
    kill_rates = storm_summary(runs, rate_key="kill_rate")
    syscall_rates = storm_summary(runs, rate_key="syscall_rate")
    for name, entry in rates.items():
        entry["median_kill_rate"] = kill_rates[name]["median_rate"]
        entry["kill_rate_ratio"] = kill_rates[name]["median_ratio"]
        entry["median_syscall_rate"] = syscall_rates[name]["median_rate"]
        entry["syscall_rate_ratio"] = syscall_rates[name]["median_ratio"]
    return {
        "available": True,
        "reps": reps,
        "seconds": seconds,
        "strace": strace,
        "command": f"proctrace --json -o FILE [--all-signals] -- {command}",
        "storm": rates,
        "accounting": {name: account.as_json() for name, account in accounts.items()},
    }
