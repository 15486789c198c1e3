"""Several recordings read as one session: the parts of a rotated session
(`-w FILE --rotate-size ...`, tracer/session/rotation.py), or recordings of
one machine's boot given together (`-r a.rec -r b.rec`, or `-r DIR`).

Order: the parts of one rotated session (the same `session_id` in the
header's `rotation` field) by part number; sessions, and recordings that are
not parts, by the time their header says they started.

The first file's snapshot seeds the session; a later file's snapshot is not
read as new processes: its processes are the ones the events before it
already made known (pid and start time name a process, so the same process
in two files is one).

No event twice: the parts of one session hold disjoint events by
construction (a part ends at a batch boundary), so they are read whole; a
part given twice is read once. Between files that are not consecutive parts
of one session (two sessions that overlapped, a recording and its filtered
copy), a later file's events up to the last one already read are taken as
read: those stamped earlier, and those at the same nanosecond that equal one
already read; a loss report there that equals one already read is skipped too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from proctrace.formats.recording import Recording, RecordingError, open_recording
from proctrace.model.events import Event, LostRecord

# The header field of a rotated part: {"session_id": str, "part": int, "previous": str | None}.
ROTATION_KEY = "rotation"

# Boot offsets of one boot differ between sessions by the clock's slew only;
# another boot's differ by the time between the boots.
SAME_BOOT_NS = 1_000_000_000


def part_of(recording: Recording) -> tuple[str, int] | None:
    """(session id, part number) of a rotated part; None for a recording that is not one."""
    info = recording.header.get(ROTATION_KEY)
    if not isinstance(info, dict):
        return None
    session, part = info.get("session_id"), info.get("part")
    if type(session) is not str or type(part) is not int or part < 0:
        raise RecordingError(f"{recording.path}: line 1: invalid header: {ROTATION_KEY} needs a session_id and a part")
    return session, part


def started_of(recording: Recording) -> datetime:
    started = recording.header.get("started")
    try:
        return datetime.fromisoformat(str(started))
    except ValueError:
        raise RecordingError(f"{recording.path}: line 1: invalid header: started is not a time: {started!r}") from None


def recording_paths(paths: Sequence[str]) -> list[str]:
    """The files named, a directory standing for every file in it (not those
    whose names start with a dot, nor subdirectories)."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise RecordingError(f"cannot read the directory {path}: {exc.strerror}") from None
        found = [os.path.join(path, n) for n in names if not n.startswith(".")]
        found = [p for p in found if not os.path.isdir(p)]
        if not found:
            raise RecordingError(f"{path}: a directory with no recordings in it")
        out += found
    return out


def open_recordings(paths: Sequence[str]) -> Recording | RecordingSet:
    """One recording as open_recording() gives it; several (or a directory) as
    one RecordingSet. Raises RecordingError naming the file at fault."""
    files = recording_paths(paths)
    if len(files) == 1 and len(paths) == 1 and files[0] == paths[0]:
        return open_recording(files[0])
    return RecordingSet([open_recording(path) for path in files])


def _in_order(recordings: list[Recording]) -> list[Recording]:
    """Sessions by their first file's start; a session's parts by number."""
    groups: dict[str, list[tuple[int, Recording]]] = {}
    for i, rec in enumerate(recordings):
        part = part_of(rec)
        key, number = (part[0], part[1]) if part is not None else (f"#{i}", 0)
        groups.setdefault(key, []).append((number, rec))
    ordered = []
    for members in groups.values():
        members.sort(key=lambda m: (m[0], started_of(m[1])))
        ordered.append((min(started_of(rec) for _, rec in members), [rec for _, rec in members]))
    ordered.sort(key=lambda g: g[0])
    return [rec for _, members in ordered for rec in members]


def _event_key(ev: Event) -> str:
    """What tells one event from another at the same nanosecond: all its
    fields (a group exit gives one task two signal events in one ns)."""
    return repr(ev)


class RecordingSet:
    """Recordings read as one, with the interface of a Recording: the first
    file's header, snapshot and clock; records() in order across the files;
    `lost_records`, `trailer` (the last file's) and `warnings` complete once
    an iteration has run to its end."""

    def __init__(self, recordings: list[Recording]) -> None:
        if not recordings:
            raise ValueError("a RecordingSet needs a recording")
        self.parts = _in_order(recordings)
        first = self.parts[0]
        for rec in self.parts[1:]:
            self._check_same_boot(first, rec)
        self.path = first.path
        self.header: dict[str, Any] = first.header
        self.snapshot = first.snapshot
        self.clock = first.clock
        self.lost_records: list[LostRecord] = []
        self.trailer: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self._reading = first

    @property
    def exec_path_search(self) -> bool | None:
        """Whether the exec records of the file being read carry path_search."""
        return self._reading.exec_path_search

    @staticmethod
    def _check_same_boot(first: Recording, rec: Recording) -> None:
        """Timestamps and pids mean the same only within one boot of one machine."""
        same_host = first.header.get("hostname") == rec.header.get("hostname")
        offset = abs(first.header["boot_offset_ns"] - rec.header["boot_offset_ns"])
        if not same_host or offset > SAME_BOOT_NS:
            raise RecordingError(
                f"{rec.path}: recorded on another machine or boot than {first.path}; "
                "read recordings of one boot together, others one at a time"
            )

    def events(self) -> Iterator[list[Event]]:
        for item in self.records():
            if type(item) is list:
                yield item

    def records(self) -> Iterator[list[Event] | LostRecord]:
        self.lost_records, self.trailer, self.warnings = [], None, []
        last_ts: int | None = None
        keys_at_last: set[str] = set()
        lost_read: set[LostRecord] = set()
        seen_parts: dict[tuple[str, int], str] = {}
        previous: tuple[str, int] | None = None
        for rec in self.parts:
            part = part_of(rec)
            if part is not None and part in seen_parts:
                self.warnings.append(f"{rec.path} is the same part of a session as {seen_parts[part]}; read once")
                continue
            if part is not None:
                seen_parts[part] = rec.path
            follows = part is not None and previous is not None and part[0] == previous[0]
            if follows and part is not None and previous is not None and part[1] != previous[1] + 1:
                self.warnings.append(
                    f"{rec.path}: part {part[1]} of its session follows part {previous[1]}: "
                    "the events of the parts between are not in these files"
                )
            # A file that does not continue the one before may repeat its events.
            boundary = None if follows or last_ts is None else last_ts
            self._reading = rec
            for item in rec.records():
                if type(item) is not list:
                    if boundary is not None and item in lost_read:
                        continue  # the same report of the same session, in an overlap
                    lost_read.add(item)
                    self.lost_records.append(item)
                    yield item
                    continue
                if boundary is not None:
                    item = [
                        ev
                        for ev in item
                        if ev.ts_ns > boundary or (ev.ts_ns == boundary and _event_key(ev) not in keys_at_last)
                    ]
                    if item and item[-1].ts_ns > boundary:
                        boundary = None  # past what was read: the rest is new
                    if not item:
                        continue
                top = max(ev.ts_ns for ev in item)
                if last_ts is None or top > last_ts:
                    last_ts, keys_at_last = top, set()
                if top == last_ts:
                    keys_at_last.update(_event_key(ev) for ev in item if ev.ts_ns == top)
                yield item
            self.warnings += rec.warnings
            self.trailer = rec.trailer
            previous = part
