"""A signal flood and a process under strace, during a fork storm.

    signal_flood.py SPAWNER PROCESSES REPORT [--ignore] [--strace SYSCALLS]

Three things at once, all children of this process:
  - the storm: SPAWNER (tracer/bench/spawner.c) running PROCESSES short-lived
    /bin/true processes on two workers;
  - a kill loop: this process sends SIGUSR1 to a target child as fast as it
    can, from the storm's start until the storm ends (and for at least a
    second). The target has a handler for it, or with --ignore ignores it, so
    that every kill() is exactly one signal_generate and nothing else;
  - with --strace: `strace -f -o /dev/null` running a Python loop of SYSCALLS
    getppid() calls, so that every syscall entry and exit stops the tracee and
    notifies strace with a SIGCHLD.

The target exits 0 on its own when the loop is over (no signal ends it). At
the end REPORT gets a JSON object with what was done: the pids involved, how
many SIGUSR1 were sent, the storm's and strace's exit statuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MIN_FLOOD_S = 1.0


def main() -> None:
    spawner, processes, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ignore = "--ignore" in sys.argv
    syscalls = int(sys.argv[sys.argv.index("--strace") + 1]) if "--strace" in sys.argv else 0

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    target = os.fork()
    if target == 0:
        os.close(ready_r)
        os.close(done_w)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN if ignore else (lambda _signo, _frame: None))
        os.write(ready_w, b"x")
        os.read(done_r, 1)  # returns at end of file: the loop is over
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    os.read(ready_r, 1)  # the disposition is in place before the first kill

    traced = None
    if syscalls:
        loop = f"import os\nfor _ in range({syscalls}): os.getppid()\n"
        traced = subprocess.Popen(["strace", "-f", "-o", "/dev/null", sys.executable, "-c", loop])
    storm = subprocess.Popen([spawner, str(processes), "2", "/bin/true"], stdout=subprocess.DEVNULL)

    sent = 0
    started = time.monotonic()
    while storm.poll() is None or time.monotonic() - started < MIN_FLOOD_S:
        for _ in range(1000):
            os.kill(target, signal.SIGUSR1)
        sent += 1000
    os.close(done_w)
    _, target_status = os.waitpid(target, 0)
    traced_status = traced.wait() if traced is not None else None
    with open(report, "w") as out:
        json.dump(
            {
                "sender": os.getpid(),
                "target": target,
                "sent": sent,
                "target_status": target_status,
                "storm": storm.pid,
                "storm_status": storm.returncode,
                "strace": traced.pid if traced is not None else None,
                "strace_status": traced_status,
                "syscalls": syscalls,
            },
            out,
        )


if __name__ == "__main__":
    main()
