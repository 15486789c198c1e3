"""The workload recorded in session.rec: one of each lifecycle event the outputs put into words.

Run once, under the proctrace that made the expected files (see tests/test_golden.py);
never by the test suite, which only reads the recording back. Everything happens
one step after the other, so the recording tells the same story every time:

* the top process makes itself a child subreaper, so the orphan below is
  adopted by it and not by whatever else runs on the machine;
* a handled SIGUSR1, sent to itself;
* a child execs /bin/true with arguments that hold a space, an escape sequence
  and bytes that are not UTF-8;
* a child fails to exec a file that does not exist (ENOENT) and exits 127;
* a child exits 3 and stays a zombie for a moment before it is reaped;
* a child is killed by SIGTERM from the top process;
* a child dies of a real SIGSEGV, without a core (RLIMIT_CORE 0);
* a child execs a shell that runs /bin/true: a fork tree with a grandchild;
* a child forks a grandchild and exits at once: the grandchild, orphaned, is
  adopted by the top process, exits 5 and is reaped by it;
* a thread of the top process starts and ends.
"""

import ctypes
import os
import resource
import signal
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
ZOMBIE_S = 0.2
ORPHAN_SLEEP_S = 0.2
HOSTILE_ARGV = [b"true", b"two words", b"\x1b[31mred\x1b[0m", b"not utf-8: \xff\xfe"]

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def child(body) -> int:
    """Fork a child that runs `body` and never returns into this script."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(1)
    return pid


def exec_hostile() -> None:
    os.execv(b"/bin/true", HOSTILE_ARGV)


def exec_missing() -> None:
    try:
        os.execv("/nonexistent/golden-missing", ["golden-missing", "arg"])
    except FileNotFoundError:
        os._exit(127)


def wait_for_sigterm() -> None:
    time.sleep(10)


def segfault() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    ctypes.string_at(0)


def exec_shell_with_a_child() -> None:
    os.execv("/bin/sh", ["sh", "-c", "/bin/true; exit 0"])


def orphan_a_grandchild() -> None:
    if os.fork() == 0:
        time.sleep(ORPHAN_SLEEP_S)
        os._exit(5)
    os._exit(0)


signal.signal(signal.SIGUSR1, lambda signum, frame: None)
os.kill(os.getpid(), signal.SIGUSR1)

for body in (exec_hostile, exec_missing, exec_shell_with_a_child):
    os.waitpid(child(body), 0)

zombie = child(lambda: os._exit(3))
# Wait until it has exited without reaping it (WNOWAIT): its time as a zombie is the sleep.
os.waitid(os.P_PID, zombie, os.WEXITED | os.WNOWAIT)
time.sleep(ZOMBIE_S)
os.waitpid(zombie, 0)

victim = child(wait_for_sigterm)
time.sleep(0.05)  # let it reach its sleep
os.kill(victim, signal.SIGTERM)
os.waitpid(victim, 0)

os.waitpid(child(segfault), 0)

orphaner = child(orphan_a_grandchild)
os.waitpid(orphaner, 0)
os.wait()  # the adopted grandchild

thread = threading.Thread(target=time.sleep, args=(0.05,))
thread.start()
thread.join()
