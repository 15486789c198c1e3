"""exec of a file that does not exist: the kernel answers ENOENT."""

import os

try:
    os.execv("/nonexistent/proctrace-test", ["proctrace-test", "arg1"])
except FileNotFoundError:
    pass
