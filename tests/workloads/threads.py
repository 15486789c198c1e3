"""A process with three extra threads that start, run briefly and end before it exits."""

import threading
import time

threads = [threading.Thread(target=time.sleep, args=(0.05,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
