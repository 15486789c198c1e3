"""A non-leader thread calls exec: the kernel gives the new image the leader's pid."""

import os
import threading


def run() -> None:
    os.execv("/bin/true", ["true", "from-thread"])


threading.Thread(target=run).start()
threading.Event().wait(5)
