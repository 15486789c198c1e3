"""Rotation and retention of a recording: `-w FILE` with `--rotate-size`,
`--rotate-time` and `--keep`, and SIGUSR1.

A RotatingRecorder is the session's recording sink. It writes through a
RecordingWriter (the one safe-file policy and the one format) and, at a batch
boundary, closes the current file and starts the next, so no event is split,
lost or written twice. Every file is a complete recording: the session's
header with the fields of `ROTATION_KEY` (which session, which part, the file
before it), a snapshot of the processes alive when the file began, its
events and lost reports, and a trailer whose reason is "rotated" (the last
file's says why the session ended) and whose `next` names the file after it.

The snapshot of a later part comes from the processes alive as the recorder's
own events tell it (tracer/model/live_processes.py), fed with exactly the
events it writes and seeded with the session's first snapshot, not from
/proc: the snapshot then agrees with the events before it (a process is in it
when the recording had it at the start or saw it begin, and did not see it
reaped), and it costs no reads of /proc while events flow. In a filtered
session that is the filtered events: a process filtered out is in a later
part's snapshot only if it was in the first.

Names (README, "Rotating a recording"):
- without strftime fields, FILE, FILE.1, FILE.2, ... (tcpdump -C's order);
  for FILE.gz the number goes before the suffix, FILE.1.gz, so every part is
  still gzip by its name and zcat reads it;
- with strftime fields (`%Y%m%d-%H%M%S.rec`), FILE expanded in UTC at each
  part's start: UTC, because local time repeats an hour when the clocks go
  back and two parts would want one name. A name this session has already
  used gets a number as above.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from proctrace.formats.recording import RecordingError, RecordingWriter
from proctrace.formats.recording_set import ROTATION_KEY
from proctrace.formats.text import safe
from proctrace.model.cgroups import CgroupTable
from proctrace.model.clock import Clock
from proctrace.model.events import EVENT_CLASSES, LIFECYCLE, Event
from proctrace.model.live_processes import LiveProcesses
from proctrace.model.procsnap import ProcInfo
from proctrace.session.cgroups import add_to_header
from proctrace.session.options import RotationOptions

# The trailer's reason in every part but the last, which says why the session ended.
ROTATED = "rotated"

_TIME_FIELD = re.compile(r"%[^%]")


def has_time_fields(template: str) -> bool:
    """Whether FILE holds strftime fields (a literal `%%` is not one)."""
    return _TIME_FIELD.search(template.replace("%%", "")) is not None


def numbered(path: str, n: int) -> str:
    """The name of the n-th file of a numbered series: FILE, FILE.1, FILE.2;
    FILE.gz, FILE.1.gz, so that the name still says gzip."""
    if n == 0:
        return path
    if path.endswith(".gz"):
        return f"{path[:-3]}.{n}.gz"
    return f"{path}.{n}"


def expand(template: str, wall_ns: int) -> str:
    """FILE's strftime fields at the wall-clock time `wall_ns` (ns since the epoch), in UTC."""
    return time.strftime(template, time.gmtime(wall_ns // 1_000_000_000))


def numbered_siblings(path: str) -> list[str]:
    """The files beside `path` that a numbered series from it would name
    (FILE.1, FILE.2, ...), which a rotated session could come to replace."""
    directory, base = os.path.split(path)
    if base.endswith(".gz"):
        pattern = re.compile(re.escape(base[:-3]) + r"\.[1-9][0-9]*\.gz")
    else:
        pattern = re.compile(re.escape(base) + r"\.[1-9][0-9]*")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []  # the directory's own problem is reported when the first file is created
    return sorted(os.path.join(directory, name) for name in names if pattern.fullmatch(name))


def refuse_existing_parts(path: str, force: bool, wall_ns: int) -> None:
    """Before anything starts: without --force, a rotated session refuses to
    begin where it would come to replace files (FILE, or FILE.1 and the
    rest of an earlier session's series). With --force each part replaces
    the file at its name, as -w does; files of an earlier series beyond
    this session's are left alone, and --keep never counts them."""
    if force:
        return
    first = expand(path, wall_ns) if has_time_fields(path) else path
    taken = [first] if os.path.lexists(first) else []
    if not has_time_fields(path):
        taken += numbered_siblings(path)
    if taken:
        more = f" (and {len(taken) - 1} more of its series)" if len(taken) > 1 else ""
        raise RecordingError(f"{taken[0]} exists{more}; use --force to overwrite, or choose another name")


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a file closed by this session from one put at its name since."""
    return st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns


def _warn(text: str) -> None:
    print(f"proctrace: warning: {safe(text)}", file=sys.stderr)


class RotatingRecorder:
    """A Sink that records the session as successive complete recordings (see
    the module docstring). Rotation happens only between batches: in write()
    before a batch is written, and at status() ticks, so a part holds whole
    batches and a loss report stays in the file that was open when it came."""

    shows_status = False  # status() is its clock tick, as for RecordingWriter

    def __init__(
        self,
        template: str,
        header: dict[str, Any],
        snapshot: list[ProcInfo],
        rotation: RotationOptions,
        force: bool,
        cgroups: CgroupTable | None = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        """`header` is the first file's (make_header's, with its snapshot);
        `snapshot` the same processes as ProcInfo, redacted, from which the
        later snapshots follow; `cgroups` the session's table, whose
        state at each part's start goes in its header. `now_ns` is the
        session's clock (CLOCK_MONOTONIC, as events are stamped), injected by
        tests."""
        self.template = template
        self.rotation = rotation
        self.force = force
        self._header = dict(header)  # each part's header is a copy of it, changed
        self._cgroups = cgroups
        self._now_ns = now_ns
        self._warn = warn
        self._clock = Clock(header["boot_offset_ns"])
        self._session_id = uuid.uuid4().hex
        self._timed_names = has_time_fields(template)
        self._interval_ns = None if rotation.interval_s is None else int(rotation.interval_s * 1e9)
        self._live = LiveProcesses(snapshot)
        self._lost = dict.fromkeys(EVENT_CLASSES, 0)  # the session's running totals
        self._used_names: set[str] = set()
        # This session's closed files still on disk, oldest first, with their stat at closing.
        self._kept: deque[tuple[str, os.stat_result | None]] = deque()
        self.paths: list[str] = []  # every file this session made, in order
        self._requested = False
        self._closed = False
        self._part = -1
        self._part_started = 0  # now_ns() when the current part began
        self._writer: RecordingWriter | None = None
        self._open_part(dict(header))

    # The Sink protocol.

    def write(self, events: list[Event]) -> None:
        if events and self._due(events_waiting=True):
            self.rotate()
        writer = self._current()
        writer.write(events)
        self._live.write(events)

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self._current().lost(ts_ns, new, total, event_class)
        self._lost[event_class] = total

    def status(self, text: str) -> None:
        if self._due(events_waiting=False):
            self.rotate()
        self._current().status(text)

    def close(self, reason: str = "ended") -> None:
        """End the last part with the session's reason."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close(reason)

    # Rotation.

    def request_rotation(self) -> None:
        """Ask for a new part at the next batch boundary; safe in a signal handler."""
        self._requested = True

    def rotate_on(self, signo: int) -> None:
        """Rotate when the process receives `signo` (SIGUSR1): the handler only
        sets a flag, which the loop's next batch or tick acts on."""
        signal.signal(signo, lambda _signo, _frame: self.request_rotation())

    def rotate(self) -> None:
        """Start the next part now. The next file is made before the current
        one is closed: when it cannot be (the disk, a name taken without
        --force), the error ends the session with the current file whole."""
        old = self._current()
        self._requested = False
        header = dict(self._header)
        now = self._now_ns()
        header["started"] = self._clock.iso(now)
        header["snapshot"] = [p.to_dict() for p in self._live.snapshot()]
        if self._cgroups is not None:
            add_to_header(header, self._cgroups)
        self._open_part(header, previous=old.path)
        old.close(ROTATED, {"next": os.path.basename(self._current().path)})
        self._kept.append((old.path, old.closed_stat))
        self._retire_old()

    def _due(self, events_waiting: bool) -> bool:
        writer = self._current()
        if self._requested:
            return True
        if self._interval_ns is not None and self._now_ns() - self._part_started >= self._interval_ns:
            return True
        # Only before a batch, and only once the part holds one: a header larger
        # than SIZE (a busy machine's snapshot) still gets its events.
        size = self.rotation.size
        return events_waiting and size is not None and writer.events > 0 and writer.size >= size

    def _current(self) -> RecordingWriter:
        if self._writer is None:
            raise RecordingError(f"{self.template}: the recording is closed")
        return self._writer

    def _next_name(self) -> str:
        part = self._part + 1
        if not self._timed_names:
            return numbered(self.template, part)
        base = expand(self.template, self._now_ns() + self._clock.offset_ns)
        n = 0
        while numbered(base, n) in self._used_names:
            n += 1
        return numbered(base, n)

    def _open_part(self, header: dict[str, Any], previous: str | None = None) -> None:
        path = self._next_name()
        part = self._part + 1
        header[ROTATION_KEY] = {
            "session_id": self._session_id,
            "part": part,
            "previous": None if previous is None else os.path.basename(previous),
        }
        writer = RecordingWriter.create(path, header, self.force, lost_before=self._lost)
        self._writer, self._part = writer, part
        self._part_started = self._now_ns()
        self._used_names.add(path)
        self.paths.append(path)

    def _retire_old(self) -> None:
        """--keep N: delete this session's oldest files beyond N (the one being
        written counts as one), each only while its name still holds the very
        file this session closed: the same inode, changed in no way since
        (an inode number alone can be reused by a file made after ours went)."""
        keep = self.rotation.keep
        if keep is None:
            return
        while len(self._kept) > keep - 1:
            path, closed = self._kept.popleft()
            try:
                if closed is not None and _identity(os.lstat(path)) == _identity(closed):
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._warn(f"cannot delete {path} (--keep {keep}): {exc.strerror}")

    @property
    def path(self) -> str:
        """The file being written now."""
        return self._current().path
