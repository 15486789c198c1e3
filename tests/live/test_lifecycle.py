"""The process model, traced live with real BPF and checked fact by fact."""

from __future__ import annotations

import sys

import pytest

from tests.live.conftest import WORKLOADS, workload

pytestmark = pytest.mark.live


def test_fork_exec_chain_links_parent_child_and_argv(trace):
    t = trace(["sh", "-c", "ls /tmp; exit 0"])
    assert t.returncode == 0, t.stderr
    (sh,) = t.execs_of("/sh")
    assert sh["argv"] == ["sh", "-c", "ls /tmp; exit 0"]
    forks = t.of_type("fork", tgid=sh["tgid"], thread=False)
    assert forks, "the shell forked a child for ls"
    (ls,) = t.execs_of("/ls")
    assert ls["argv"] == ["ls", "/tmp"]
    assert ls["ppid"] == sh["tgid"]
    assert ls["pid"] in {f["child_pid"] for f in forks}
    assert t.process_exit(ls["tgid"])["exit_code"] == 0
    reaps = t.of_type("reap", reaped_pid=ls["tgid"])
    assert [r["tgid"] for r in reaps] == [sh["tgid"]], "the shell reaped ls"


@pytest.mark.parametrize("code", [0, 7, 255])
def test_exit_code_is_reported_and_returned(trace, code):
    t = trace(["sh", "-c", f"exit {code}"])
    (sh,) = t.execs_of("/sh")
    ex = t.process_exit(sh["tgid"])
    assert (ex["exit_code"], ex["signal"], ex["core_dumped"]) == (code, None, False)
    assert ex["status"] == code << 8
    assert t.returncode == code


@pytest.mark.parametrize(("signame", "signo"), [("TERM", 15), ("KILL", 9)])
def test_death_by_signal_is_a_signal_not_a_code(trace, signame, signo):
    t = trace(["sh", "-c", f"kill -{signame} $$"])
    (sh,) = t.execs_of("/sh")
    ex = t.process_exit(sh["tgid"])
    assert (ex["exit_code"], ex["signal"]) == (None, f"SIG{signame}")
    assert t.returncode == 128 + signo
    sent = t.of_type("signal", stage="generate", signo=signo, target_pid=sh["tgid"])
    assert sent and sent[0]["sender_pid"] == sh["tgid"]


def test_group_exit_delivery_names_the_real_signal(trace):
    t = trace(["sh", "-c", "kill -TERM $$"])
    (sh,) = t.execs_of("/sh")
    delivered = t.of_type("signal", stage="deliver", target_pid=sh["tgid"])
    # The kernel delivers SIGKILL to tear the group down; the cause is kept.
    assert [(d["signal"], d["group_exit_signal"]) for d in delivered] == [("SIGKILL", "SIGTERM")]


def test_stop_and_continue_are_traced(trace):
    t = trace(workload("stop_cont.py"))
    assert t.returncode == 0, t.stderr
    parent = t.execs_of("python3")[0] if t.execs_of("python3") else t.of_type("exec")[0]
    (fork,) = t.of_type("fork", tgid=parent["tgid"], thread=False)
    child = fork["child_pid"]
    stops = t.of_type("signal", stage="deliver", target_pid=child, signal="SIGSTOP")
    assert len(stops) == 1
    conts = t.of_type("signal", stage="generate", target_pid=child, signal="SIGCONT")
    assert len(conts) == 1 and conts[0]["sender_pid"] == parent["tgid"]
    assert conts[0]["ts_ns"] > stops[0]["ts_ns"]
    assert t.process_exit(child)["signal"] == "SIGTERM"
    # wait4 collected a stop report and a continue report before the reap: neither is a reap.
    (reap,) = t.of_type("reap", reaped_pid=child)
    assert reap["signal"] == "SIGTERM"


def test_waitid_reaps_carry_the_status_rebuilt_from_siginfo(trace):
    t = trace(workload("waitid_reaps.py"))
    assert t.returncode == 0, t.stderr
    exits, killed, stopped = (int(pid) for pid in t.stdout.split())
    (reap,) = t.of_type("reap", reaped_pid=exits)
    assert (reap["exit_code"], reap["signal"]) == (5, None)
    (reap,) = t.of_type("reap", reaped_pid=killed)
    assert (reap["exit_code"], reap["signal"]) == (None, "SIGKILL")
    # waitid(WSTOPPED) collected a stop report first: only the real reap counts.
    (reap,) = t.of_type("reap", reaped_pid=stopped)
    assert (reap["exit_code"], reap["signal"]) == (0, None)


def test_zombie_exit_and_reap_are_apart(trace):
    t = trace(workload("zombie.py"))
    assert t.returncode == 0, t.stderr
    parent = t.of_type("exec")[0]
    (fork,) = t.of_type("fork", tgid=parent["tgid"], thread=False)
    child = fork["child_pid"]
    ex = t.process_exit(child)
    assert ex["exit_code"] == 3
    (reap,) = t.of_type("reap", reaped_pid=child)
    assert reap["tgid"] == parent["tgid"]
    assert reap["exit_code"] == 3
    zombie_ns = reap["ts_ns"] - ex["ts_ns"]
    assert 0.4e9 < zombie_ns < 5e9


def test_threads_are_marked_and_the_process_ends_once(trace):
    t = trace(workload("threads.py"))
    assert t.returncode == 0, t.stderr
    main = t.of_type("exec")[0]
    tgid = main["tgid"]
    thread_forks = t.of_type("fork", tgid=tgid, thread=True)
    assert len(thread_forks) >= 3
    assert all(f["child_tgid"] == tgid for f in thread_forks)
    # Every thread's end is traced. The process ends with whichever task exits
    # last, not necessarily the main thread: Python's join() returns before a
    # joined thread has left the kernel, so that thread may still be exiting.
    exits = t.of_type("exit", tgid=tgid)
    assert {e["pid"] for e in exits} >= {f["child_pid"] for f in thread_forks}
    assert t.process_exit(tgid)["exit_code"] == 0  # exactly one process exit


def test_exec_of_missing_file_reports_enoent(trace):
    t = trace(workload("exec_missing.py"))
    assert t.returncode == 0, t.stderr
    failed = [e for e in t.of_type("exec") if e["errno"] is not None]
    assert [(e["filename"], e["errno"]) for e in failed] == [("/nonexistent/proctrace-test", "ENOENT")]
    assert failed[0]["argv"] == ["proctrace-test", "arg1"]


def test_exec_from_non_leader_thread_reports_old_pid(trace):
    t = trace(workload("thread_exec.py"))
    assert t.returncode == 0, t.stderr
    (ex,) = t.execs_of("/true")
    assert ex["argv"] == ["true", "from-thread"]
    assert ex["pid"] == ex["tgid"]
    assert ex["old_pid"] is not None and ex["old_pid"] != ex["pid"]
    assert ex["old_pid"] in {f["child_pid"] for f in t.of_type("fork", thread=True)}


def test_argv_beyond_limit_is_cut_and_flagged(trace):
    args = [f"arg{i:05d}" for i in range(100)]  # 900 bytes with NULs
    t = trace(["/bin/true", *args], "--argv-max", "256")
    (ex,) = t.execs_of("/true")
    assert ex["argv_truncated"] is True
    joined = "\0".join(ex["argv"]).encode()
    assert len(joined) <= 256
    assert ("\0".join(["/bin/true", *args])).encode().startswith(joined)


def test_argv_within_default_limit_is_whole(trace):
    args = [f"arg{i:05d}" for i in range(300)]  # ~2.7 KiB
    t = trace(["/bin/true", *args])
    (ex,) = t.execs_of("/true")
    assert ex["argv"] == ["/bin/true", *args]
    assert ex["argv_truncated"] is False


def test_argv_bytes_are_kept_exactly(trace):
    sys.path.insert(0, str(WORKLOADS))
    from exec_bytes import ARGS  # type: ignore[import-not-found]

    t = trace(workload("exec_bytes.py"))
    (ex,) = t.execs_of("/true")
    assert [a.encode("utf-8", "surrogateescape") for a in ex["argv"]] == ARGS


def test_issue_example_inner_code_and_outer_sigterm(trace):
    t = trace(["sh", "-c", 'sh -c "exit 7"; /bin/true "a b" c; kill -TERM $$'])
    assert t.returncode == 143
    outer, inner = t.execs_of("/sh")
    assert outer["argv"] == ["sh", "-c", 'sh -c "exit 7"; /bin/true "a b" c; kill -TERM $$']
    assert inner["argv"] == ["sh", "-c", "exit 7"]
    (true,) = t.execs_of("/true")
    assert true["argv"] == ["/bin/true", "a b", "c"]
    assert t.process_exit(inner["tgid"])["exit_code"] == 7
    assert t.process_exit(outer["tgid"])["signal"] == "SIGTERM"
    assert "proctrace: tracing" in t.stderr and " lost" in t.stderr


def test_perf_buffer_gives_the_same_facts(trace):
    t = trace(["sh", "-c", 'sh -c "exit 7"; /bin/true "a b" c'], "--buffer", "perf")
    assert t.returncode == 0
    _outer, inner = t.execs_of("/sh")
    assert t.process_exit(inner["tgid"])["exit_code"] == 7
    assert t.execs_of("/true")[0]["argv"] == ["/bin/true", "a b", "c"]
    assert [e["ts_ns"] for e in t.events] == sorted(e["ts_ns"] for e in t.events)


def test_command_under_sudo_runs_as_invoking_user(trace, tmp_path):
    sudo_env = {"SUDO_UID": "65534", "SUDO_GID": "65534", "SUDO_USER": "nobody"}
    t = trace(["sh", "-c", "exit $(id -u | cut -c1-3)"], env=sudo_env)
    (sh,) = t.execs_of("/sh")
    assert sh["uid"] == 65534
    assert t.returncode == int("65534"[:3]) % 256
    t_root = trace(["sh", "-c", "exit $(id -u)"], "--as-root", env=sudo_env)
    assert t_root.execs_of("/sh")[0]["uid"] == 0
    assert t_root.returncode == 0


def test_command_not_found_is_a_clear_error(trace):
    t = trace(["no-such-command-proctrace"])
    assert t.returncode == 127
    assert "command not found" in t.stderr
    assert "Traceback" not in t.stderr
