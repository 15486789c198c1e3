"""Tracepoint format files: where each field of a tracepoint record lives.

Tracepoint records change between kernels (comm became a __data_loc string in
2025; sched_process_exit gained group_dead). The kernel describes each record in
tracefs's `format` file; reading it, instead of assuming a layout, is what lets
one BPF program compile and decode on every kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from proctrace.kernel.errors import KernelError

TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>-?\d+);"
)


class FormatError(KernelError):
    """A format file is missing or says something we cannot use."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    offset: int
    size: int
    data_loc: bool  # a __data_loc string: a u32 of (length << 16 | offset)


@dataclass(frozen=True)
class TracepointFormat:
    category: str
    event: str
    fields: dict[str, Field]


def parse_format(category: str, event: str, text: str) -> TracepointFormat:
    fields: dict[str, Field] = {}
    for line in text.splitlines():
        m = _FIELD_RE.match(line)
        if not m:
            continue
        decl = m["decl"].strip()
        # "unsigned long sa_handler", "char comm[16]", "__data_loc char[] filename"
        name_m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?\s*$", decl)
        if not name_m:
            raise FormatError(f"{category}:{event}: cannot read field declaration {decl!r}")
        name = name_m.group(1)
        if name.startswith("common_"):
            continue
        fields[name] = Field(
            name=name,
            type=decl[: name_m.start()].strip() + (name_m.group(2) or ""),
            offset=int(m["offset"]),
            size=int(m["size"]),
            data_loc=decl.startswith("__data_loc"),
        )
    if not fields:
        raise FormatError(f"{category}:{event}: format file lists no fields")
    return TracepointFormat(category, event, fields)


def tracefs_root() -> Path | None:
    for root in TRACEFS_ROOTS:
        if (root / "events").is_dir():
            return root
    return None


def read_format(category: str, event: str, root: Path | None = None) -> TracepointFormat:
    root = root or tracefs_root()
    if root is None:
        raise FormatError("tracefs is not mounted")
    path = root / "events" / category / event / "format"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FormatError(f"tracepoint {category}:{event} does not exist on this kernel") from None
    return parse_format(category, event, text)
