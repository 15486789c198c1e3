"""Every lifecycle fact that strace and proctrace can both see, under a SIGCHLD flood.

Run under `strace -f` (tests/live/test_strace_agreement.py). While a flood child
makes cheap syscalls without pause (each one is two ptrace stops, each stop a
SIGCHLD to strace), the main process makes rounds of these facts, one after the
other, for at least DURATION_S, so that lifecycle events come all through the
flood and not only at its start:

* a PATH search: `true` through two missing directories before /usr/bin;
* a command that does not exist anywhere on its PATH (only ENOENTs);
* an exec of a file without execute permission (EACCES) and of an executable
  file that is no binary and no script (ENOEXEC);
* a `#!` script with an interpreter argument, which exits 9;
* children exiting 0, 1, 2, 42, 127 and 255;
* a child killed by SIGTERM, and one killed by SIGSEGV (a real fault) that
  cannot dump core (RLIMIT_CORE 0 and not dumpable, whatever core_pattern says);
* in the first round, when core_pattern writes a plain file in the crashing
  process's directory, a child that dumps core into DIR/crash (removed at
  once, so the core file never leaves the test's directory); otherwise no
  core dump at all, and the output says so;
* a multithreaded child whose non-main thread execs while another runs;
* a fork storm: FORK_STORM short processes, STORM_PARALLEL at a time, some
  exiting at once with varied codes, some exec'ing /bin/true.

Usage: strace_facts.py DIR (files it makes go there). Prints one JSON object:
{"rounds": N, "flood_syscalls": N, "core_dump": bool}.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

FLOOD_BATCH = 2000  # syscalls between two looks at the stop pipe
DURATION_S = 6.0  # rounds of facts go on at least this long (~8 rounds of ~0.8 s here, under strace)
FORK_STORM = 300
STORM_PARALLEL = 8
EXIT_CODES = (0, 1, 2, 42, 127, 255)
PR_SET_DUMPABLE = 4


def flood(stop_read: int, report_write: int) -> None:
    """Child: cheap syscalls until told to stop, then their count."""
    os.set_blocking(stop_read, False)
    count = 0
    stopped = False
    while not stopped:
        for _ in range(FLOOD_BATCH):
            os.getppid()
        count += FLOOD_BATCH
        with contextlib.suppress(BlockingIOError):
            stopped = os.read(stop_read, 1) == b""  # the parent closed its end
    os.write(report_write, str(count).encode())
    os._exit(0)


def start_flood() -> tuple[int, int, int]:
    stop_read, stop_write = os.pipe()
    report_read, report_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(stop_write)
        os.close(report_read)
        flood(stop_read, report_write)
    os.close(stop_read)
    os.close(report_write)
    return pid, stop_write, report_read


def in_child(body: Callable[[], None]) -> int:
    """Fork, run body in the child (which must not return), wait; returns the raw wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(100)  # body returned or raised: a status no fact here uses
    _, status = os.waitpid(pid, 0)
    return status


def path_search() -> None:
    subprocess.run(["true"], env={"PATH": "/nonexistent/a:/nonexistent/b:/usr/bin"}, check=True)


def command_not_found() -> None:
    try:
        subprocess.run(["proctrace-no-such-command"], env={"PATH": "/nonexistent/a:/nonexistent/b"})
    except FileNotFoundError:
        return
    raise AssertionError("a command that does not exist ran")


def exec_failures(directory: Path) -> None:
    not_executable = directory / "not-executable"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    not_executable.chmod(0o644)  # no x bit: EACCES, even for root
    no_format = directory / "no-format"
    no_format.write_bytes(b"\x00\x01 neither ELF nor #!\n")
    no_format.chmod(0o755)  # executable, but no binary handler knows it: ENOEXEC
    for path, error in ((not_executable, PermissionError), (no_format, OSError)):
        try:
            subprocess.run([str(path), "arg"])
        except error:
            continue
        raise AssertionError(f"{path} ran")


def script(directory: Path) -> None:
    path = directory / "exit-nine.sh"
    path.write_text("#!/bin/sh -e\nexit 9\n")  # an interpreter with one argument
    path.chmod(stat.S_IRWXU)
    assert subprocess.run([str(path), "one", "two words"]).returncode == 9


def exit_codes() -> None:
    for code in EXIT_CODES:
        status = in_child(lambda code=code: os._exit(code))
        assert os.waitstatus_to_exitcode(status) == code


def killed_by_sigterm() -> None:
    status = in_child(lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def no_core_dump() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A pipe core_pattern ignores RLIMIT_CORE 0; a process that is not dumpable
    # dumps nowhere (suid_dumpable only widens this for setuid programs).
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def killed_by_sigsegv() -> None:
    def segfault() -> None:
        no_core_dump()
        ctypes.string_at(0)  # a real fault: reading address 0

    status = in_child(segfault)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV and not os.WCOREDUMP(status)


def core_dump(directory: Path) -> bool:
    """A child that dumps core into `directory`, where the kernel writes it to a plain relative file."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        return False  # the core would go to a crash collector or elsewhere on the machine

    crash = directory / "crash"
    crash.mkdir()

    def abort() -> None:
        os.chdir(crash)
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        os.abort()

    status = in_child(abort)
    shutil.rmtree(crash)  # the core file: its status is the fact, its megabytes are not needed
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT
    return os.WCOREDUMP(status)


def exec_from_thread() -> None:
    def body() -> None:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        threading.Thread(target=os.execv, args=("/bin/true", ["true", "exec from a thread"])).start()
        time.sleep(30)  # the exec ends this thread, the leader, long before

    status = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0


def fork_storm() -> None:
    running: list[int] = []
    for i in range(FORK_STORM):
        pid = os.fork()
        if pid == 0:
            if i % 3 == 0:
                os.execv("/bin/true", ["true", f"storm-{i}"])
            os._exit(i % 256)
        running.append(pid)
        if len(running) == STORM_PARALLEL:
            os.waitpid(running.pop(0), 0)
    for pid in running:
        os.waitpid(pid, 0)


def main() -> None:
    directory = Path(sys.argv[1])
    flood_pid, stop_flood, flood_report = start_flood()
    deadline = time.monotonic() + DURATION_S
    rounds = 0
    dumped = False
    while rounds == 0 or time.monotonic() < deadline:
        path_search()
        command_not_found()
        exec_failures(directory)
        script(directory)
        exit_codes()
        killed_by_sigterm()
        killed_by_sigsegv()
        if rounds == 0:
            dumped = core_dump(directory)
        exec_from_thread()
        fork_storm()
        rounds += 1
    os.close(stop_flood)
    flood_syscalls = int(os.read(flood_report, 32))
    os.waitpid(flood_pid, 0)
    print(json.dumps({"rounds": rounds, "flood_syscalls": flood_syscalls, "core_dump": dumped}), flush=True)


if __name__ == "__main__":
    main()
