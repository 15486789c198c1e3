"""Reap children with waitid(2): one exits 5, one is killed by SIGKILL, one is
stopped (a report waitid(WSTOPPED) collects, not a reap) and then exits 0.
Prints the three child pids in that order."""

import os
import signal
import time

exits = os.fork()
if exits == 0:
    os._exit(5)
killed = os.fork()
if killed == 0:
    while True:
        time.sleep(1)
stopped = os.fork()
if stopped == 0:
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(0)

os.waitid(os.P_PID, exits, os.WEXITED)
os.kill(killed, signal.SIGKILL)
os.waitid(os.P_PID, killed, os.WEXITED)
os.waitid(os.P_PID, stopped, os.WSTOPPED)
os.kill(stopped, signal.SIGCONT)
os.waitid(os.P_PID, stopped, os.WEXITED)
print(exits, killed, stopped, flush=True)
