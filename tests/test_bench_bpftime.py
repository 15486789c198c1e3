"""The arithmetic of the kernel-side bench (tracer/bench/bpftime.py): which
programs are the session's, what each ran during the storm, and the medians."""

from __future__ import annotations

from pathlib import Path

from proctrace.bench.bpftime import ProgramRun, attached_programs, bpf_stats, program_stats, storm_share, summary

PERF_LIST = [
    {"pid": 10, "fd": 40, "prog_id": 7, "fd_type": "tracepoint", "tracepoint": "sched_process_exec"},
    {"pid": 10, "fd": 41, "prog_id": 8, "fd_type": "tracepoint", "tracepoint": "sys_exit_execve"},
    {"pid": 10, "fd": 42, "prog_id": 8, "fd_type": "tracepoint", "tracepoint": "sys_exit_execveat"},
    {"pid": 10, "fd": 43, "prog_id": 9, "fd_type": "raw_tracepoint", "raw_tracepoint": "sched_process_free"},
    {"pid": 99, "fd": 3, "prog_id": 50, "fd_type": "tracepoint", "tracepoint": "sched_process_exec"},  # not ours
]


def test_only_the_sessions_programs_are_named_by_every_tracepoint_they_serve() -> None:
    assert attached_programs(PERF_LIST, 10) == {
        7: "sched_process_exec",
        8: "sys_exit_execve+sys_exit_execveat",
        9: "sched_process_free",
    }


def test_a_programs_share_is_what_it_ran_between_the_two_readings() -> None:
    names = {7: "sched_process_exec", 9: "sched_process_free"}
    before = program_stats([{"id": 7, "run_cnt": 100, "run_time_ns": 5_000}, {"id": 9, "run_cnt": 0}])
    after = program_stats([{"id": 7, "run_cnt": 300, "run_time_ns": 405_000}, {"id": 9, "run_cnt": 0}])
    assert storm_share(names, before, after) == [
        ProgramRun("sched_process_exec", 200, 400_000),
        ProgramRun("sched_process_free", 0, 0),
    ]


def test_the_summary_takes_medians_per_run_and_per_process_over_the_reps() -> None:
    reps = [
        {"spawned": 100, "programs": [ProgramRun("exec", 100, 300_000), ProgramRun("exit", 100, 100_000)]},
        {"spawned": 200, "programs": [ProgramRun("exec", 200, 400_000), ProgramRun("exit", 200, 400_000)]},
        {"spawned": 100, "programs": [ProgramRun("exec", 100, 250_000), ProgramRun("exit", 0, 0)]},
    ]
    s = summary({"reps": reps})
    assert s["programs"]["exec"] == {"ns_per_run": 2_500.0, "ns_per_process": 2_500.0}
    # A program that never ran in a rep has no time per run there, and no time per process.
    assert s["programs"]["exit"] == {"ns_per_run": 1_500.0, "ns_per_process": 1_000.0}
    assert s["total_ns_per_process"] == 4_000.0  # of 4000, 4000 and 2500


def test_a_storm_that_spawned_nothing_is_left_out() -> None:
    assert summary({"reps": [{"spawned": 0, "programs": [ProgramRun("exec", 0, 0)]}]})["total_ns_per_process"] is None


def test_the_statistics_switch_is_put_back_as_it_was(tmp_path: Path) -> None:
    switch = tmp_path / "bpf_stats_enabled"
    switch.write_text("0\n")
    with bpf_stats(switch):
        assert switch.read_text() == "1\n"
    assert switch.read_text() == "0\n"
