"""A family of processes whose timeline is known in advance.

The top process makes itself a child subreaper, so the orphan below is adopted
by it (not by init or whatever subreaper runs the tests) and the result does
not depend on the machine. Its children, one after the other:

* exec:       execs /bin/true with arguments and exits 0;
* zombie:     exits 3 at once and stays a zombie for 0.5 s before it is reaped;
* orphaner:   forks a grandchild and exits 0 at once;
  grandchild: orphaned, adopted by the top process, sleeps 0.3 s, exits 5 and
              is reaped by the top process;
* threads:    runs with 3 threads (itself and 2 more) alive at once, exits 0.

At the end it prints the pids as one JSON object on stdout, so a test can
check the trace against what really happened.
"""

import ctypes
import json
import os
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
ZOMBIE_S = 0.5
GRANDCHILD_SLEEP_S = 0.3
EXEC_ARGV = ["true", "exec-arg", "two words"]

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

pids: dict[str, int] = {"top": os.getpid()}

pids["exec"] = os.fork()
if pids["exec"] == 0:
    os.execv("/bin/true", EXEC_ARGV)
os.waitpid(pids["exec"], 0)

pids["zombie"] = os.fork()
if pids["zombie"] == 0:
    os._exit(3)
# Wait until it has exited without reaping it (WNOWAIT), so its time as a zombie
# is the sleep that follows, whatever the scheduler did before.
os.waitid(os.P_PID, pids["zombie"], os.WEXITED | os.WNOWAIT)
time.sleep(ZOMBIE_S)
os.waitpid(pids["zombie"], 0)

read_end, write_end = os.pipe()
pids["orphaner"] = os.fork()
if pids["orphaner"] == 0:
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(GRANDCHILD_SLEEP_S)
        os._exit(5)
    os.write(write_end, str(grandchild).encode())
    os._exit(0)
os.close(write_end)
pids["grandchild"] = int(os.read(read_end, 32))
os.close(read_end)
# Reaping the orphaner first means the kernel has already handed the grandchild
# to us (reparenting happens at the orphaner's exit), so waitpid finds it.
os.waitpid(pids["orphaner"], 0)
os.waitpid(pids["grandchild"], 0)

pids["threads"] = os.fork()
if pids["threads"] == 0:
    all_alive = threading.Barrier(3)
    workers = [threading.Thread(target=all_alive.wait) for _ in range(2)]
    for worker in workers:
        worker.start()
    all_alive.wait()
    for worker in workers:
        worker.join()
    os._exit(0)
os.waitpid(pids["threads"], 0)

print(json.dumps(pids), flush=True)
