"""exec of a file that does not exist: the kernel answers ENOENT."""

import contextlib
import os

with contextlib.suppress(FileNotFoundError):
    os.execv("/nonexistent/proctrace-test", ["proctrace-test", "arg1"])
