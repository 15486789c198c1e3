"""Many short processes, two at a time: the load under which a recording
rotates (tests/live/test_rotation_live.py).

Usage: spawn_many.py COUNT MARKER PIDFILE. Each child execs /bin/true MARKER
INDEX and is reaped; at the end the pids of all of them, as the parent saw
them from posix_spawn, are written to PIDFILE as a JSON list: the oracle the
test holds the recording to.
"""

import json
import os
import sys

count, marker, pidfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pids: list[int] = []
running: list[int] = []
for i in range(count):
    pid = os.posix_spawn("/bin/true", ["true", marker, str(i)], os.environ)
    pids.append(pid)
    running.append(pid)
    if len(running) == 2:
        os.waitpid(running.pop(0), 0)
for pid in running:
    os.waitpid(pid, 0)
with open(pidfile, "w") as f:
    json.dump(pids, f)
