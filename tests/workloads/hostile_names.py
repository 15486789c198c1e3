"""Put one hostile byte string into every string a tracer shows: comm, argv, filename.

    hostile_names.py VALUE_FILE [--comm] [--argv] [--file DIR]

VALUE_FILE holds the raw bytes (read from a file because an argument could not
carry every value: it cannot be over 128 KiB).

--comm    prctl(PR_SET_NAME, VALUE): the kernel keeps the first 15 bytes. Then
          a child (which inherits the name) sends itself SIGTERM and dies of
          it, and is reaped: the fork, the signal's target_comm, the exit and
          the reap all carry the name.
--argv    a child execs /bin/true with argv [VALUE, VALUE].
--file    a child execs DIR/VALUE, a copy of /bin/true made here (a "/" in
          VALUE makes directories; "//" stays in the exec'd path as written),
          with argv [VALUE, VALUE] if --argv is given, else ["true"]. The comm
          after that exec is the path's last component, cut at 15 bytes.

Everything runs in this process and its children, one after the other; the
exit status is 0 when every child did what it should.
"""

import argparse
import ctypes
import os
import shutil
import signal
import sys

PR_SET_NAME = 15

libc = ctypes.CDLL(None, use_errno=True)


def set_comm(value: bytes) -> None:
    if libc.prctl(PR_SET_NAME, ctypes.c_char_p(value), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def child_killed_by_sigterm() -> bool:
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(99)  # not reached: SIGTERM's default action ends us
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def child_exec(path: bytes, argv: list[bytes]) -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("value_file")
    parser.add_argument("--comm", action="store_true")
    parser.add_argument("--argv", action="store_true")
    parser.add_argument("--file", metavar="DIR")
    args = parser.parse_args()
    with open(args.value_file, "rb") as f:
        value = f.read()
    ok = True
    if args.comm:
        set_comm(value)
        ok &= child_killed_by_sigterm()
    argv = [value, value] if args.argv else [b"true"]
    if args.file:
        path = os.fsencode(args.file) + b"/" + value
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy(b"/bin/true", path)
        ok &= child_exec(path, argv)
    elif args.argv:
        ok &= child_exec(b"/bin/true", argv)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
