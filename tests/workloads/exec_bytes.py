"""exec /bin/true with arguments holding spaces, quotes, newlines, non-ASCII and invalid UTF-8."""

import os

ARGS = [b"true", b"a b", b'"double"', b"it's", b"line1\nline2", "ünïcödé".encode(), b"\xff\xfe\x80", b"", b"tab\there"]

if __name__ == "__main__":
    os.execv(b"/bin/true", ARGS)
