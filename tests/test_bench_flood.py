"""The flood section of the bench (proctrace.bench.flood, flood_section), on
canned text: the flood's reports, proctrace's JSON lines of a flood, the
account of each run, the targets judged on it and the table. No root, no
kernel, no timing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from proctrace.bench import BenchError, flood, flood_section, results, table
from proctrace.bench.flood_section import FloodAccount, account_flood
from proctrace.bench.storm import STORM_COMM, TRUE_COMM, StormResult
from rich.console import Console

SENDER, TARGET, STRACE, TRACEE = 2765, 2766, 2767, 2774
SPAWNER, CHILD, OTHER_CHILD = 2770, 2771, 2772

FLOOD_STDOUT = (
    "sent 132352 seconds 0.550619 sender 2765 target 2766\n"
    "spawned 2 failed 0 seconds 0.300512\n"
    "syscalls 19968 seconds 0.555935\n"
)


def test_the_flood_reports_are_read_in_any_order():
    kill = flood.parse_kill_line(FLOOD_STDOUT)
    assert kill == flood.KillReport(sent=132352, seconds=0.550619, sender=SENDER, target=TARGET)
    assert kill.rate == pytest.approx(132352 / 0.550619)
    syscalls = flood.parse_syscalls_line(FLOOD_STDOUT)
    assert syscalls == flood.SyscallReport(calls=19968, seconds=0.555935)


def test_a_flood_without_strace_has_no_syscall_report_and_one_without_a_kill_report_is_an_error():
    assert flood.parse_syscalls_line("spawned 2 failed 0 seconds 0.3\nsent 5 seconds 0.5 sender 1 target 2\n") is None
    with pytest.raises(BenchError, match="kill loop"):
        flood.parse_kill_line("spawned 2 failed 0 seconds 0.3\n")


def head(kind: str, pid: int, comm: str, ppid: int = 1) -> dict[str, Any]:
    return {"type": kind, "ts_ns": 1, "time": "t", "pid": pid, "tgid": pid, "ppid": ppid, "comm": comm,
            "uid": 0, "start_ns": 1, "cpu": 0}  # fmt: skip


def storm_child(child: int) -> list[dict[str, Any]]:
    """The four lifecycle events of one storm child, as proctrace --json writes them."""
    return [
        head("fork", SPAWNER, STORM_COMM) | {"child_pid": child, "child_tgid": child, "thread": False},
        head("exec", child, TRUE_COMM, SPAWNER) | {"filename": "./ptbench-true", "errno": None},
        head("exit", child, TRUE_COMM, SPAWNER) | {"exit_code": 0, "process_exit": True},
        head("reap", SPAWNER, STORM_COMM) | {"reaped_pid": child, "exit_code": 0},
    ]


def kill_signal(result: str = "already_pending") -> dict[str, Any]:
    return head("signal", SENDER, flood.FLOOD_COMM) | {
        "signal": "SIGUSR1", "signo": 10, "stage": "generate", "target_pid": TARGET,
        "target_comm": flood.FLOOD_COMM, "sender_pid": SENDER, "code": 0, "result": result, "group": True,
    }  # fmt: skip


def summary(reason: str, stage: str, count: int, sender: int | None, target: int, signal: str) -> dict[str, Any]:
    return head("signal_summary", sender or target, flood.FLOOD_COMM) | {
        "reason": reason, "signal": signal, "signo": 10, "stage": stage, "target_pid": target,
        "target_comm": "x", "sender_pid": sender, "count": count, "first_ns": 1, "last_ns": 2,
    }  # fmt: skip


def lost(event_class: str | None, count: int) -> dict[str, Any]:
    record = {"type": "lost", "ts_ns": 5, "time": "t", "count": count, "total": count}
    return record if event_class is None else record | {"class": event_class}


def lines(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(r, separators=(",", ":")) + "\n" for r in records]


def result(sent: int, pids: tuple[int, ...] = (CHILD, OTHER_CHILD), syscalls: int = 19968) -> flood.FloodResult:
    return flood.FloodResult(
        StormResult(spawned=len(pids), failed=0, seconds=0.3, pids=set(pids)),
        flood.KillReport(sent=sent, seconds=0.55, sender=SENDER, target=TARGET),
        flood.SyscallReport(calls=syscalls, seconds=0.55),
    )


# Two storm children, three of the kill loop's SIGUSR1s streamed and 100 held
# back where generated, 40 held back where delivered, ptrace stops of strace's tracee.
FOLDED_FLOOD = [
    *storm_child(CHILD),
    *storm_child(OTHER_CHILD),
    kill_signal("delivered"),
    kill_signal(),
    kill_signal(),
    head("signal", TARGET, flood.FLOOD_COMM) | {"signal": "SIGUSR1", "stage": "deliver", "target_pid": TARGET},
    summary("rate_limit", "generate", 100, SENDER, TARGET, "SIGUSR1"),
    summary("rate_limit", "deliver", 40, None, TARGET, "SIGUSR1"),
    summary("ptrace_stop", "generate", 39_936, TRACEE, STRACE, "SIGCHLD"),
    summary("ptrace_stop", "generate", 6, TRACEE + 1, STRACE, "SIGCHLD"),
    # Not the storm's: a fork of the flood itself, and a child the storm did not report.
    head("fork", SENDER, flood.FLOOD_COMM) | {"child_pid": TARGET, "thread": False},
    head("exit", 9999, TRUE_COMM) | {"process_exit": True},
]


def test_a_folded_flood_adds_up_exactly():
    account = account_flood(lines(*FOLDED_FLOOD), result(sent=103), (2049, 0))
    assert account.lifecycle_expected == 8
    assert (account.lifecycle_received, account.lifecycle_missing, account.lifecycle_lost) == (8, 0, 0)
    assert account.signals_streamed == 4
    assert (account.kill_streamed, account.kill_suppressed, account.kill_gap) == (3, 100, 0)
    assert account.kill_unaccounted == 0
    assert account.folded_rate_limit == 140
    assert account.folded_ptrace_stop == 39_942
    assert account.summaries == 4
    assert account.syscalls == 19968
    assert (account.events_reported, account.lost_reported) == (2049, 0)


def test_a_missing_storm_event_and_a_lifecycle_loss_both_show():
    without_a_reap = [r for r in FOLDED_FLOOD if not (r["type"] == "reap" and r["reaped_pid"] == OTHER_CHILD)]
    account = account_flood(lines(*without_a_reap, lost("lifecycle", 1)), result(sent=103), (2048, 1))
    assert (account.lifecycle_missing, account.lifecycle_lost, account.signal_lost) == (1, 1, 0)


def test_a_loss_report_without_a_class_counts_against_the_lifecycle():
    account = account_flood(lines(*FOLDED_FLOOD, lost(None, 7)), result(sent=103), None)
    assert (account.lifecycle_lost, account.signal_lost) == (7, 0)


def test_kill_calls_not_streamed_must_fit_in_the_signals_lost():
    streamed = lines(*storm_child(CHILD), kill_signal(), kill_signal(), lost("signal", 50), lost("signal", 10))
    fits = account_flood(streamed, result(sent=40, pids=(CHILD,)), (6, 60))
    assert (fits.signal_lost, fits.kill_gap, fits.kill_unaccounted) == (60, 38, 0)
    # More kill() calls than were streamed, suppressed and lost: some vanished.
    vanished = account_flood(streamed, result(sent=100, pids=(CHILD,)), (6, 60))
    assert vanished.kill_unaccounted == 100 - 2 - 60
    # More streamed and suppressed than were sent: counted twice somewhere.
    doubled = account_flood(lines(*FOLDED_FLOOD), result(sent=90), None)
    assert (doubled.kill_gap, doubled.kill_unaccounted) == (-13, 13)


def test_accounts_add_up_across_runs():
    one = account_flood(lines(*FOLDED_FLOOD), result(sent=103), (2049, 0))
    total = FloodAccount() + one + one
    assert total.runs == 2
    assert total.lifecycle_expected == 16
    assert total.kill_sent == 206
    assert total.as_json()["lifecycle_missing"] == 0
    assert total.as_json()["kill_gap"] == 0


# ---- the section's document, its targets and its table ----------------------------


def _flood_doc(
    traced_rate: float = 98.0, default: FloodAccount | None = None, all_signals: FloodAccount | None = None
) -> dict[str, Any]:
    runs = {
        flood_section.UNTRACED: [{"rate": 100.0, "kill_rate": 3e5}, {"rate": 100.0, "kill_rate": 3e5}],
        flood_section.DEFAULT: [{"rate": traced_rate, "kill_rate": 2.4e5, "syscall_rate": 3e4}],
        flood_section.ALL_SIGNALS: [{"rate": 60.0, "kill_rate": 1.5e5, "syscall_rate": 1e4}],
    }
    ok = account_flood(lines(*FOLDED_FLOOD), result(sent=103), (2049, 0))
    accounts = {flood_section.DEFAULT: default or ok, flood_section.ALL_SIGNALS: all_signals or ok}
    return flood_section.flood_document(runs, accounts, 1, 1.0, "/usr/bin/strace", "ptbench-flood 1.0 /usr/bin/strace")


def _flood_statuses(flood_doc: dict[str, Any]) -> dict[str, str]:
    return {t.name: t.status for t in results.flood_targets(flood_doc)}


def test_the_flood_document_holds_rates_ratios_and_accounts():
    doc = _flood_doc()
    assert json.loads(json.dumps(doc)) == doc
    default = doc["storm"][flood_section.DEFAULT]
    assert default["median_ratio"] == pytest.approx(0.98)
    assert default["slowdown_pct"] == pytest.approx(2.0)
    assert default["kill_rate_ratio"] == pytest.approx(0.8)
    assert default["median_syscall_rate"] == 3e4
    assert doc["accounting"][flood_section.ALL_SIGNALS]["lifecycle_lost"] == 0
    assert doc["command"] == "proctrace --json -o FILE [--all-signals] -- ptbench-flood 1.0 /usr/bin/strace"


def test_the_flood_targets_pass_on_a_clean_flood():
    statuses = _flood_statuses(_flood_doc(traced_rate=98.5))  # 1.5%: within the 2% target
    assert statuses == {
        results.FLOOD_LIFECYCLE_TARGET: "pass",
        "storm slowdown in the flood (median)": "pass",
        "flood: every kill() accounted": "pass",
    }


def test_a_lifecycle_loss_in_either_configuration_fails_the_flood_target():
    lossy = FloodAccount(runs=1, lifecycle_lost=1)
    assert _flood_statuses(_flood_doc(default=lossy))[results.FLOOD_LIFECYCLE_TARGET] == "fail"
    assert _flood_statuses(_flood_doc(all_signals=lossy))[results.FLOOD_LIFECYCLE_TARGET] == "fail"
    missing = FloodAccount(runs=1, lifecycle_expected=4, lifecycle_received=3)
    assert _flood_statuses(_flood_doc(all_signals=missing))[results.FLOOD_LIFECYCLE_TARGET] == "fail"


def test_the_flood_slowdown_and_the_kill_accounting_fail_on_a_miss():
    statuses = _flood_statuses(_flood_doc(traced_rate=90.0, default=FloodAccount(runs=1, kill_unaccounted=3)))
    assert statuses["storm slowdown in the flood (median)"] == "fail"
    assert statuses["flood: every kill() accounted"] == "fail"


def test_a_failed_traced_run_fails_the_flood_target():
    doc = _flood_doc()
    doc["storm"][flood_section.DEFAULT]["errors"] = ["proctrace: exit 1"]
    assert _flood_statuses(doc)[results.FLOOD_LIFECYCLE_TARGET] == "fail"


def test_a_flood_that_cannot_run_is_na_and_one_that_broke_fails():
    assert _flood_statuses({"available": False, "reason": "n/a (no C compiler found)"}) == {
        results.FLOOD_LIFECYCLE_TARGET: "n/a"
    }
    broke = {"available": False, "failed": True, "reason": "error: the flood failed (1)"}
    assert _flood_statuses(broke) == {results.FLOOD_LIFECYCLE_TARGET: "fail"}


def test_the_flood_table_shows_rates_and_every_account():
    out = io.StringIO()
    table.render_flood(_flood_doc(), Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "7. Flood" in text
    assert "suppressed by the rate limit" in text and "ptrace stops folded" in text
    row = next(line for line in text.splitlines() if "ptrace stops folded" in line)
    assert row.count("39,942") == 2
    assert "-2.0%" not in text and "+2.0%" in text
