"""A kill loop far over the rate limit, to a target that handles SIGUSR1 for a
while and then leaves it to its default action: the SIGUSR1 that kills it comes
when its rate window is long used up.

    fatal_in_flood.py REPORT

The target handles SIGUSR1 for HANDLED_S, then restores SIG_DFL and waits to
die. REPORT gets the pids and how many signals were sent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

HANDLED_S = 0.3


def main() -> None:
    report = sys.argv[1]
    ready_r, ready_w = os.pipe()
    target = os.fork()
    if target == 0:
        os.close(ready_r)
        signal.signal(signal.SIGUSR1, lambda _signo, _frame: None)
        os.write(ready_w, b"x")
        time.sleep(HANDLED_S)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        while True:
            signal.pause()
    os.close(ready_w)
    os.read(ready_r, 1)
    sent = 0
    while True:
        try:
            os.kill(target, signal.SIGUSR1)
        except ProcessLookupError:
            break
        sent += 1
        if sent % 1000 == 0 and os.waitpid(target, os.WNOHANG)[0]:
            break
    with open(report, "w") as out:
        json.dump({"sender": os.getpid(), "target": target, "sent": sent}, out)


if __name__ == "__main__":
    main()
