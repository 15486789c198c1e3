"""The two programs the reading-back section times, each in a fresh process:

    python -m proctrace.bench.readers proctrace RECORDING   # proctrace's reader alone
    python -m proctrace.bench.readers plain RECORDING       # a plain json.loads loop

Each prints the number of records it read and nothing else. The first parses
and decodes every event: issue 4's "reading back runs at least 200k events per second" is
about it (`proctrace -r` adds rendering, the same cost as live streaming). The
second is the yardstick. Each imports only what it needs, so neither pays for
the other's start-up.
"""

from __future__ import annotations

import sys


def read_with_proctrace(path: str) -> int:
    """Events in the recording, each parsed and decoded by proctrace's reader."""
    from proctrace.formats.recording import open_recording

    recording = open_recording(path)
    return sum(len(batch) for batch in recording.events())


def read_plain(path: str) -> int:
    """Lines of the recording, each parsed by json.loads and nothing more."""
    import gzip
    import json

    opener = gzip.open if path.endswith(".gz") else open
    n = 0
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            json.loads(line)
            n += 1
    return n


READERS = {"proctrace": read_with_proctrace, "plain": read_plain}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in READERS:
        print(f"usage: python -m proctrace.bench.readers {{{','.join(READERS)}}} RECORDING", file=sys.stderr)
        return 2
    reader, path = args
    print(READERS[reader](path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
