"""PATH searches that find their command, with a miss of each kind, and one that finds nothing.

Usage: path_search.py DIR, where DIR holds a file named `true` without execute
permission (so that exec of it fails with EACCES, even for root).

* subprocess runs `true` along DIRS_MISSED, then /usr/bin: ENOENT for a
  directory that does not exist, ENOTDIR for a PATH entry that is a file,
  EACCES for DIR/true; then /usr/bin/true runs. Three misses.
* a forked child runs `true` with os.execvp along a missing directory, then
  /usr/bin: one miss.
* subprocess runs a command that is in no directory of its one-entry PATH: one
  failed exec, a real failure.
"""

import contextlib
import os
import subprocess
import sys

# A busy machine may take the CPU from a search between two attempts for longer
# than the live tracer looks ahead (tracer/model/path_search.py); above every
# ordinary task it runs through. Only root may ask; others run as they are.
with contextlib.suppress(PermissionError):
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

not_executable = sys.argv[1]
dirs_missed = ["/nonexistent-proctrace-1", "/etc/passwd", not_executable]
subprocess.run(["true", "by-subprocess"], env={"PATH": os.pathsep.join([*dirs_missed, "/usr/bin"])}, check=True)

child = os.fork()
if child == 0:
    os.execvpe("true", ["true", "by-execvp"], {"PATH": "/nonexistent-proctrace-2:/usr/bin"})
os.waitpid(child, 0)

with contextlib.suppress(FileNotFoundError):
    subprocess.run(["proctrace-no-such-command"], env={"PATH": "/nonexistent-proctrace-3"})
