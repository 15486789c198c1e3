"""A parent that ignores SIGCHLD: the kernel releases its children at their
exit, and no wait() ever collects them.

    ignores_sigchld.py

Prints the child's pid, then lives on a moment after the child's end, so
that a tracer sees the child released while its parent still runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time

signal.signal(signal.SIGCHLD, signal.SIG_IGN)
child = os.fork()
if child == 0:
    os._exit(3)
print(child, flush=True)
time.sleep(0.3)
try:
    os.waitpid(child, 0)
except ChildProcessError:
    sys.stdout.write("no child to wait for\n")  # what POSIX says of an ignored SIGCHLD
