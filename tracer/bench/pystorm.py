"""The storm in Python, for a machine without a C compiler: the interface of
storm.c (``SPAWNERS SECONDS PROGRAM PIDFILE``, one report line on stdout), but
Python's own cost per spawn hides part of the tracer's.

The bench runs it through a launcher file named ``ptbench-storm``, so that its
comm is the storm's."""

from __future__ import annotations

import os
import sys
import time


def spawn_until(deadline: float, program: str) -> tuple[list[int], int]:
    """Fork + exec `program` + wait until `deadline`: (the children's pids, how many failed)."""
    pids: list[int] = []
    failed = 0
    while time.monotonic() < deadline:
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(program, [program])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        failed += status != 0
        pids.append(pid)
    return pids, failed


def main(argv: list[str] | None = None) -> int:
    spawners_arg, seconds_arg, program, pidfile = (sys.argv[1:] if argv is None else argv)[:4]
    spawners, seconds = int(spawners_arg), float(seconds_arg)
    start = time.monotonic()
    deadline = start + seconds
    read_end, write_end = os.pipe()
    for i in range(spawners):
        if os.fork() == 0:
            pids, failed = spawn_until(deadline, program)
            ended = time.monotonic()
            # Written after the clock stops: the file I/O is not part of the storm.
            with open(f"{pidfile}.{i}", "w") as f:
                f.write("".join(f"{p}\n" for p in pids))
            os.write(write_end, f"{len(pids)} {failed} {ended}\n".encode())
            os._exit(0)
    os.close(write_end)
    for _ in range(spawners):
        os.wait()
    with os.fdopen(read_end) as reports:
        rows = [line.split() for line in reports.read().splitlines()]
    print(
        f"spawned {sum(int(x[0]) for x in rows)} failed {sum(int(x[1]) for x in rows)} "
        f"seconds {max(float(x[2]) for x in rows) - start:.6f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
