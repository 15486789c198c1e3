"""Stop a child with SIGSTOP, continue it with SIGCONT, then end it with SIGTERM."""

import os
import signal

child = os.fork()
if child == 0:
    while True:
        signal.pause()
os.kill(child, signal.SIGSTOP)
os.waitpid(child, os.WUNTRACED)
os.kill(child, signal.SIGCONT)
os.waitpid(child, os.WCONTINUED)
os.kill(child, signal.SIGTERM)
os.waitpid(child, 0)
