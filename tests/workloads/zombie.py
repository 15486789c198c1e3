"""A child that exits with 3 at once and stays a zombie until its parent waits 0.5 s later."""

import os
import time

child = os.fork()
if child == 0:
    os._exit(3)
time.sleep(0.5)
os.waitpid(child, 0)
