"""The processes that existed before tracing started, read from /proc.

They give every traced process its ancestors: without them a tree would start
at whatever happened to fork first after the tracer attached. Parsers take the
file contents, so they are tested on canned text without a live /proc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proctrace.model.events import as_bytes, as_text


@dataclass(slots=True)
class ProcInfo:
    pid: int  # the process id (tgid)
    ppid: int
    uid: int
    comm: bytes
    argv: list[bytes] = field(default_factory=list)
    # Start time in ns since boot, from /proc/<pid>/stat in clock ticks (10 ms
    # resolution, and boot-time rather than monotonic based): approximate.
    start_ns: int = 0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "comm": as_text(self.comm),
            "argv": [as_text(a) for a in self.argv],
            "start_ns": self.start_ns,
            "threads": self.threads,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcInfo:
        return cls(
            pid=int(d["pid"]),
            ppid=int(d["ppid"]),
            uid=int(d["uid"]),
            comm=as_bytes(d["comm"]),
            argv=[as_bytes(a) for a in d["argv"]],
            start_ns=int(d["start_ns"]),
            threads=int(d["threads"]),
        )


def parse_stat(raw: bytes, ticks_per_s: int) -> tuple[bytes, int, int, int]:
    """(comm, ppid, threads, start_ns) from /proc/<pid>/stat.

    comm sits in parentheses and may itself hold ')' and spaces, so the fields
    after it are found from the last ')'."""
    open_paren = raw.index(b"(")
    close_paren = raw.rindex(b")")
    comm = raw[open_paren + 1 : close_paren]
    rest = raw[close_paren + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, num_threads 20, starttime 22.
    ppid = int(rest[1])
    threads = int(rest[17])
    start_ns = int(rest[19]) * 1_000_000_000 // ticks_per_s
    return comm, ppid, threads, start_ns


def parse_uid(status: bytes) -> int:
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    raise ValueError("no Uid line in /proc/<pid>/status")


def snapshot(proc: Path = Path("/proc")) -> list[ProcInfo]:
    """Every process now running. Processes that end while we read are skipped."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        base = proc / name
        try:
            comm, ppid, threads, start_ns = parse_stat((base / "stat").read_bytes(), ticks)
            uid = parse_uid((base / "status").read_bytes())
            cmdline = (base / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue  # gone, or a kernel thread mid-exit
        argv = cmdline[:-1].split(b"\0") if cmdline else []
        out.append(ProcInfo(int(name), ppid, uid, comm, argv, start_ns, threads))
    out.sort(key=lambda p: p.pid)
    return out
