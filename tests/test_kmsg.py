"""The kernel log's OOM summaries: parsed from the record format /dev/kmsg
gives (mm/oom_kill.c, dump_oom_victim), and matched to the victims' exits."""

from __future__ import annotations

from pathlib import Path

from proctrace.kernel.kmsg import KernelLog, OomMemcgStep, parse_oom_summary
from proctrace.model.events import ExitEvent, WaitStatus

MEMCG_RECORD = (
    b"6,1843,96306472,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    b"oom_memcg=/proctrace-oom-1a2b,task_memcg=/proctrace-oom-1a2b,task=python3,pid=4242,uid=0"
)
GLOBAL_RECORD = (
    b"6,1900,99000000,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
    b"global_oom,task_memcg=/user.slice,task=hog,pid=77,uid=1000"
)


def test_a_memcg_oom_names_the_cgroup_out_of_memory_and_the_victims() -> None:
    kill = parse_oom_summary(MEMCG_RECORD)
    assert kill is not None
    assert (kill.pid, kill.constraint) == (4242, "CONSTRAINT_MEMCG")
    assert kill.oom_memcg == b"/proctrace-oom-1a2b"
    assert kill.task_memcg == b"/proctrace-oom-1a2b"


def test_a_machine_wide_oom_has_no_memcg_out_of_memory() -> None:
    kill = parse_oom_summary(GLOBAL_RECORD)
    assert kill is not None
    assert (kill.pid, kill.constraint, kill.oom_memcg, kill.task_memcg) == (77, "CONSTRAINT_NONE", None, b"/user.slice")


def test_commas_and_escaped_bytes_in_paths_and_names_do_not_confuse_the_parse() -> None:
    # cgroup names may hold commas; the kernel writes other bytes as \xNN
    record = (
        b"6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
        b"oom_memcg=/a,b\\x0ac,task_memcg=/a,b\\x0ac/d,task=x,pid=9,uid=0,pid=12,uid=0"
    )
    kill = parse_oom_summary(record)
    assert kill is not None
    assert (kill.pid, kill.oom_memcg, kill.task_memcg) == (12, b"/a,b\nc", b"/a,b\nc/d")


def test_other_records_are_not_oom_kills() -> None:
    assert parse_oom_summary(b"6,1844,96306480,-;Memory cgroup out of memory: Killed process 4242 (python3)") is None
    assert parse_oom_summary(b"4,2,3,-;user wrote oom-kill:constraint=CONSTRAINT_MEMCG,task=x,pid=1,uid=0") is None
    assert parse_oom_summary(b"no prefix at all") is None


def _victim(pid: int) -> ExitEvent:
    return ExitEvent(1, pid, pid, 1, 0, b"python3", 0, 0, WaitStatus(9), 0, True, 0, None, True)


def test_the_step_names_the_memcg_on_the_victims_exit_once(tmp_path: Path) -> None:
    log_file = tmp_path / "kmsg"
    log_file.write_bytes(b"6,1,1,-;logged before the session\n")
    log = KernelLog(str(log_file))
    assert log.readable and not log.pending()  # what was there before is not read
    with log_file.open("ab") as f:
        f.write(MEMCG_RECORD + b"\n SUBSYSTEM=memory\n")
    step = OomMemcgStep(lambda batch: batch, log)
    other, victim = _victim(1000), _victim(4242)
    other.oom_killed = False
    batch = step([other, victim])
    assert batch[1].oom_memcg == b"/proctrace-oom-1a2b" and batch[0].oom_memcg is None
    again = _victim(4242)
    assert step([again])[0].oom_memcg is None  # taken once: a reused pid gets nothing
    assert not log.pending()
    log.close()


def test_an_unreadable_log_names_nothing_and_fails_nothing(tmp_path: Path) -> None:
    log = KernelLog(str(tmp_path / "missing"))
    assert not log.readable
    victim = _victim(4242)
    assert OomMemcgStep(lambda batch: batch, log)([victim])[0].oom_memcg is None
