"""Session recordings: the file `-w` writes and `-r` reads back.

Format (version 2)
------------------
JSON Lines: one JSON object per line, ASCII, each line ending in a newline.

1. A header, always the first line::

     {"type": "header", "format": "proctrace-recording", "version": 2,
      "proctrace_version": "0.1.0", "hostname": "...", "kernel": "6.18.0",
      "boot_offset_ns": N, "boot_time": "2026-...Z", "buffer": "ring",
      "options": {...}, "started": "2026-...Z", "snapshot": [{...}, ...]}

   `boot_offset_ns` turns kernel timestamps into wall-clock time on any
   machine: wall-clock ns since the epoch = `ts_ns + boot_offset_ns`.
   `boot_time` is that offset as an ISO 8601 UTC time (the wall time of
   CLOCK_MONOTONIC zero: the boot, minus any time suspended). `buffer` is
   `ring` or `perf`; `options` holds the filters and options in effect, as the
   tracer gave them, with `redaction`, what was redacted before anything was
   written (`{"argv": bool, "env": bool, "patterns": [...], "env_allow":
   [...] or null}`, tracer/model/redact.py; absent in recordings from before
   it); `snapshot` the processes that existed when tracing began
   (ProcInfo.to_dict: pid, ppid, uid, comm, argv, start_ns, threads, and
   from version 2 the context fields where /proc gave them), redacted as the
   events are.
2. One line per event, exactly the `--json` output line (README, JSON schema),
   in timestamp order. Version 2 added `cgroup_id` to every event, the context
   fields (ProcessContext.to_dict: cwd, credentials, terminal, namespaces,
   cgroup, ...) to successful execs, and the record types `cred` (a change of
   credentials after exec) and `cgroup` (a cgroup made, removed or renamed).
3. A line for each report of lost events, as in `--json`:
   `{"type": "lost", "ts_ns": N, "time": "...", "class": "signal", "count": N, "total": N}`
   (`class` is "lifecycle" or "signal", `total` that class's; a record without
   `class`, from before the classes had buffers of their own, reads as "lifecycle").
4. When the session ended cleanly, a trailer, always the last line:
   `{"type": "trailer", "ended": "...", "events": N, "lost": N, "lost_by_class": {...}, "reason": "..."}`
   (`events` written in this file, `lost` the events reported lost while it
   was written, `lost_by_class` per class, `reason` why the session ended).
5. A file of a rotated session (tracer/session/rotation.py) is a whole
   recording too: its header has `rotation` ({"session_id", "part",
   "previous"}; tracer/formats/recording_set.py reads several as one), its
   `started` and `snapshot` are of the moment it began, and its trailer's
   `reason` is "rotated", with `next` the name of the file after it, unless
   it is the last.

A recording can be read with jq like `--json` output: `jq 'select(.type=="exec")'`.
A reader refuses a version it does not know; a later proctrace that adds
fields keeps the version, one that changes the meaning of existing ones or
adds record types raises it. This reader reads versions 1 and 2: a version 1
event has no cgroup_id (read as 0, unknown) and its execs no context.

Compression is chosen by the file name: `FILE.gz` is gzip (one stream; zcat
and `gzip -d` read it). `.zst` is refused when writing and reading: Python 3.11
has no zstd in its standard library and proctrace adds no dependencies for it
(`zstd -d FILE.zst` gives a plain recording). On reading, gzip data is also
recognised by its magic bytes whatever the name.

Crash safety: each batch of events is written to the file when it arrives
(plain files: one write per batch; gzip: the stream is sync-flushed at least
every FLUSH_INTERVAL_S, so what is in the file decodes up to a complete
record). A tracer killed with SIGKILL leaves a file that reads back up to its
last complete record, with a warning that the trailer is missing. (Data
reaches the kernel, not the disk: a power cut can lose the last seconds.)

Safety when root writes: the file is created with mode 0600 and O_EXCL, never
through a symbolic link. With force, an existing regular file is unlinked and
a new one created (rather than truncated), so a hard link planted at the path
never lets the recording overwrite another file, and the new file's owner and
mode are never the old file's. Symbolic links and non-regular files are
refused even with force.

Reading streams: records are parsed in blocks of READ_CHUNK bytes (see
`_Parser`), so memory does not grow with the file.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import json
import os
import stat
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, NoReturn

from proctrace import __version__
from proctrace.formats.jsonl import SUMMARY_TYPE, dumps_line, event_from_dict, event_json, lost_json
from proctrace.model.clock import TS_LIMIT, Clock
from proctrace.model.events import (
    EVENT_CLASSES,
    EVENT_KINDS,
    LIFECYCLE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    LostRecord,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
)
from proctrace.model.procsnap import ProcInfo

FORMAT = "proctrace-recording"
VERSION = 2

# The live loop calls status() every 0.5 s, so with this interval compressed
# data is never more than about a second behind.
FLUSH_INTERVAL_S = 0.5
# How often the writer checks that its file still has a name (see _check_linked).
CHECK_INTERVAL_S = 1.0
GZIP_LEVEL = 6

# Blocks of this size parse fastest here: ~270k events/s, against ~230k/s at 1 MiB
# (the objects of a smaller block stay in the CPU caches).
READ_CHUNK = 128 << 10
# A line longer than this is not a recording's (the largest real one, a header
# with the snapshot of a busy machine, is tens of megabytes).
MAX_LINE = 256 << 20

_loads = json.loads

_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_COMPRESSIONS = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}
_ZSTD_UNSUPPORTED = (
    "zstd-compressed recordings are not supported: Python 3.11 has no zstd in its standard library "
    "and proctrace adds no dependency for it; use .gz, or convert with `zstd -d FILE.zst`"
)


class RecordingError(Exception):
    """A recording that cannot be written or read; the message names the file
    and, for bad input, the line or byte offset."""


def make_header(clock: Clock, buffer: str, options: dict[str, Any], snapshot: Sequence[ProcInfo]) -> dict[str, Any]:
    """The header of a recording of this machine, starting now."""
    uname = os.uname()
    return {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "proctrace_version": __version__,
        "hostname": uname.nodename,
        "kernel": uname.release,
        "boot_offset_ns": clock.offset_ns,
        "boot_time": clock.iso(0),
        "buffer": buffer,
        "options": options,
        "started": clock.iso(time.monotonic_ns()),
        "snapshot": [p.to_dict() for p in snapshot],
    }


def _compression(path: str) -> str | None:
    if path.endswith(".gz"):
        return "gzip"
    if path.endswith(".zst"):
        raise RecordingError(f"{path}: {_ZSTD_UNSUPPORTED}")
    return None


# --------------------------------------------------------------------------- writing


class _FdFile:
    """Writes go straight to the descriptor (no user-space buffer to lose);
    `size` is how many bytes are in the file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            self.size += n
            view = view[n:]


def _create_exclusive(path: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


def _refuse_unless_regular(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise RecordingError(f"{path} is a symbolic link; proctrace never writes through one")
    if not stat.S_ISREG(st.st_mode):
        raise RecordingError(f"{path} exists and is not a regular file")


def create_private_file(path: str, force: bool) -> int:
    """A new file for what proctrace writes (recordings, exports): mode 0600, as
    it may hold command lines; never through a symbolic link; an existing
    regular file is replaced only with force, by unlink and create, so a planted
    hard link is never written through. Returns the descriptor."""
    try:
        return _create_exclusive(path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RecordingError(f"cannot create {path}: {exc.strerror}") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None  # removed since: fall through and try again once
    if st is not None:
        _refuse_unless_regular(path, st)
        if not force:
            raise RecordingError(f"{path} exists; use --force to overwrite")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RecordingError(f"cannot replace {path}: {exc.strerror}") from None
    try:
        return _create_exclusive(path)
    except FileExistsError:
        # Someone created it between our unlink and open: do not fight over it.
        raise RecordingError(f"{path} exists; use --force to overwrite") from None
    except OSError as exc:
        raise RecordingError(f"cannot create {path}: {exc.strerror}") from None


class RecordingWriter:
    """A Sink that records the session to a file (see the module docstring for
    the format). Every error is a RecordingError; after one, the writer is
    broken: write() and lost() raise again, close() only releases the file."""

    shows_status = False  # status() is its clock tick, not text to show

    def __init__(
        self, path: str, fd: int, header: dict[str, Any], gzip: bool, lost_before: dict[str, int] | None = None
    ) -> None:
        self.path = path
        self._fd = fd
        self._file = _FdFile(fd)
        self._clock = Clock(header["boot_offset_ns"])
        self._deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
        # The file size at which the file ends with a complete record (and, for
        # gzip, at a sync point, so it decodes up to that record).
        self._good_size = 0
        self._unflushed = False
        self._last_flush = self._last_check = time.monotonic()
        self._events = 0
        # The session's running totals of lost events when this file began (a
        # rotated part's; zero for a whole session): the trailer counts what
        # was reported while this file was written.
        self._lost_before = dict.fromkeys(EVENT_CLASSES, 0) if lost_before is None else dict(lost_before)
        self._lost_by_class = dict(self._lost_before)
        self._failure: str | None = None
        self._closed = False
        # The file's stat once closed: who deletes it later (--keep) checks that
        # its name still holds this very file, unchanged since.
        self.closed_stat: os.stat_result | None = None

    @classmethod
    def create(
        cls, path: str, header: dict[str, Any], force: bool, lost_before: dict[str, int] | None = None
    ) -> RecordingWriter:
        """Create the file (mode 0600, never through a symlink, an existing file
        only with force) and write `header` (see make_header) to it.
        `lost_before`: the session's totals of lost events by class so far,
        for a file that continues a session (a rotated part)."""
        gzip = _compression(path) == "gzip"
        identity = {"type": "header", "format": FORMAT, "version": VERSION}
        header = {**identity, **{k: v for k, v in header.items() if k not in identity}}
        offset = header.get("boot_offset_ns")
        if type(offset) is not int or not isinstance(header.get("snapshot"), list):
            raise ValueError("a recording header needs an int boot_offset_ns and a snapshot list")
        line = dumps_line(header).encode()  # before creating: a bad header leaves no file
        fd = create_private_file(path, force)
        writer = cls(path, fd, header, gzip, lost_before)
        try:
            writer._append(line, sync=True)
        except RecordingError:
            writer._discard_new_file()
            raise
        return writer

    # The Sink protocol.

    def write(self, events: list[Event]) -> None:
        if not events:
            self._tick()
            return
        clock = self._clock
        data = "".join([event_json(ev, clock) + "\n" for ev in events]).encode()
        self._append(data)
        self._events += len(events)
        self._tick()

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self._append(lost_json(ts_ns, new, total, self._clock, event_class).encode())
        self._lost_by_class[event_class] = total
        self._tick()

    def status(self, text: str) -> None:
        # The live loop calls this twice a second even when no event comes:
        # it is the writer's clock for flushing and checking the file.
        self._tick()

    @property
    def size(self) -> int:
        """The bytes in the file so far (compressed ones, for gzip)."""
        return self._file.size

    @property
    def events(self) -> int:
        """The events written so far."""
        return self._events

    def close(self, reason: str = "ended", extra: dict[str, Any] | None = None) -> None:
        """Write the trailer (with `extra` fields, if any) and close the file.
        Raises RecordingError when the trailer cannot be written (the events
        before it stay readable)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._failure is None:
                self._check_linked()
                before = self._lost_before
                lost_by_class = {kind: n - before.get(kind, 0) for kind, n in self._lost_by_class.items()}
                trailer = {
                    "type": "trailer",
                    "ended": self._clock.iso(time.monotonic_ns()),
                    "events": self._events,
                    "lost": sum(lost_by_class.values()),
                    "lost_by_class": lost_by_class,
                    "reason": reason,
                    **(extra or {}),
                }
                self._append(dumps_line(trailer).encode(), finish=True)
        finally:
            with contextlib.suppress(OSError):
                self.closed_stat = os.fstat(self._fd)
            os.close(self._fd)

    # Internals.

    def _append(self, data: bytes, sync: bool = False, finish: bool = False) -> None:
        if self._failure is not None:
            raise RecordingError(self._failure)
        try:
            deflate = self._deflate
            if deflate is None:
                self._file.write(data)
                self._good_size = self._file.size
                return
            out = deflate.compress(data)
            if finish:
                out += deflate.flush(zlib.Z_FINISH)
            elif sync or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
                out += deflate.flush(zlib.Z_SYNC_FLUSH)
            else:
                self._unflushed = True
                if out:
                    self._file.write(out)
                return
            self._file.write(out)
            self._flushed()
        except OSError as exc:
            self._fail(exc)

    def _flushed(self) -> None:
        self._good_size = self._file.size
        self._unflushed = False
        self._last_flush = time.monotonic()

    def _tick(self) -> None:
        now = time.monotonic()
        if self._unflushed and now - self._last_flush >= FLUSH_INTERVAL_S:
            try:
                self._file.write(self._deflate.flush(zlib.Z_SYNC_FLUSH))  # type: ignore[union-attr]
                self._flushed()
            except OSError as exc:
                self._fail(exc)
        if now - self._last_check >= CHECK_INTERVAL_S:
            self._last_check = now
            self._check_linked()

    def _check_linked(self) -> None:
        """Writes to a file whose last name was removed still succeed, and the
        data vanishes with it: notice, rather than trace into the void."""
        if self._failure is not None:
            return
        try:
            links = os.fstat(self._fd).st_nlink
        except OSError as exc:
            self._fail(exc)
        if links > 0:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            self._failure = f"{self.path}: the recording's directory was removed; the recording is lost"
        else:
            self._failure = f"{self.path}: the recording was deleted while recording; it is lost"
        raise RecordingError(self._failure)

    def _fail(self, exc: OSError) -> NoReturn:
        # Cut a partly written record (or a gzip block after the last sync
        # point) so the file ends with a complete record.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._good_size)
        what = "the disk is full" if exc.errno in (errno_mod.ENOSPC, errno_mod.EDQUOT) else exc.strerror
        self._failure = (
            f"{self.path}: cannot write the recording: {what}; "
            f"it holds the session up to its last complete record ({self._events} events)"
        )
        raise RecordingError(self._failure) from None

    def _discard_new_file(self) -> None:
        """Remove the file create() made, if the path is still that file."""
        try:
            if os.path.samestat(os.fstat(self._fd), os.lstat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._closed = True


# --------------------------------------------------------------------------- reading

NO_TRAILER = "the recording has no trailer: the tracer did not end cleanly (killed, or writing failed)"


def _lost(d: dict[str, Any]) -> LostRecord:
    ts, count, total = d["ts_ns"], d["count"], d["total"]
    if not (type(ts) is int and type(count) is int and type(total) is int and 0 <= ts < TS_LIMIT):
        raise ValueError("ts_ns, count and total must be integers")
    # Before signals had a buffer of their own any event could be lost: say the worst.
    event_class = d.get("class", LIFECYCLE)
    if event_class not in EVENT_CLASSES:
        raise ValueError(f"unknown class of lost events {event_class!r}")
    return LostRecord(ts, count, total, event_class)


class _Trailer(dict):  # type: ignore[type-arg]
    """The trailer record, told apart from events in a parsed block."""


def _trailer(d: dict[str, Any]) -> _Trailer:
    events, lost = d.get("events"), d.get("lost")
    if type(events) is not int or type(lost) is not int:
        raise ValueError("events and lost must be integers")
    return _Trailer(d)


# What a malformed record can raise from json or the converters.
_BAD_RECORD = (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError, RecursionError)
_CONVERTERS = {
    **dict.fromkeys((*EVENT_KINDS, SUMMARY_TYPE), event_from_dict),
    "lost": _lost,
    "trailer": _trailer,
}
_EVENT_TYPES = frozenset(
    (ForkEvent, ExecEvent, ExitEvent, SignalEvent, SignalSummaryEvent, ReapEvent, CredEvent, CgroupEvent)
)
_RECORD_TYPES = _EVENT_TYPES | {LostRecord, _Trailer}


def _record(d: dict[str, Any]) -> Any:
    """The Event, LostRecord or _Trailer of a record; raises _BAD_RECORD."""
    return _CONVERTERS[d["type"]](d)


def _describe_bad_line(line: str, exc: Exception) -> str:
    if any((c < " " and c not in "\t\r") or "\x7f" <= c <= "\x9f" for c in line[:4096]):
        return "binary data, not a JSON record"
    if isinstance(exc, RecursionError):
        return "not a record (nested too deeply)"
    return f"not valid JSON ({exc})"


def _exec_path_search(lines: list[str]) -> bool | None:
    """Whether the first exec record among `lines` has a path_search key; None
    when there is none. Read from the text: a key is the only place where
    `"path_search":` can appear in a line, since a quote inside a JSON string
    is escaped."""
    for line in lines:
        if '"type":"exec"' in line:
            return '"path_search":' in line
    return None


class _Parser:
    """Turns blocks of lines into records: Events, LostRecords and the trailer.

    A block is parsed with one json.loads of `[line,\\nline,\\n...]`: json
    shares the key strings within a call, which makes that about twice as fast
    as a call per line. The result is what parsing each line alone gives when
    every line begins with `{`, the block yields one element per line, there
    are as many JSON objects as lines, and every element is a record. (A raw
    newline cannot be inside a JSON string, so each separator lies between
    tokens; with one object per line and every element one of them, each
    line's `{` starts an element, so each separator is the array's own comma.)
    Any other block is parsed line by line, which also finds the line of an
    error.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._objects = 0
        self._decode_block = json.JSONDecoder(object_hook=self._hook).decode

    def _hook(self, d: dict[str, Any]) -> Any:
        # Called for nested objects too, innermost first: an exec's creds_before
        # and env, a cred event's before and after. They have no type and are
        # left as they are for the record's converter. (An env variable named
        # "type" makes env look like a record; its converter then fails on the
        # string values and the block is parsed line by line.)
        kind = d.get("type")
        if kind is None:
            return d
        self._objects += 1
        return _CONVERTERS[kind](d)  # _record, inlined: this runs for every event

    def parse(self, lines: list[str], first_lineno: int) -> tuple[list[Any], bool]:
        """The records of `lines`, and whether they are all events."""
        text = "[" + ",\n".join(lines) + "]"
        if text[1:2] == "{" and text.count(",\n{") == len(lines) - 1:
            self._objects = 0
            try:
                items = self._decode_block(text)
            except _BAD_RECORD:
                pass
            else:
                if len(items) == self._objects == len(lines):
                    types = set(map(type, items))
                    if types <= _EVENT_TYPES:
                        return items, True
                    if types <= _RECORD_TYPES:
                        return items, False
        items = [self.parse_line(line, first_lineno + i) for i, line in enumerate(lines)]
        return items, set(map(type, items)) <= _EVENT_TYPES

    def parse_line(self, line: str, lineno: int) -> Any:
        try:
            d = _loads(line)
        except (ValueError, RecursionError) as exc:
            raise self.error(lineno, _describe_bad_line(line, exc)) from None
        if type(d) is not dict:
            raise self.error(lineno, "not a record (a JSON object)")
        kind = d.get("type")
        if type(kind) is not str or kind not in _CONVERTERS:
            if kind == "header":
                raise self.error(lineno, "a second header")
            raise self.error(lineno, f"unknown record type {kind!r}" if kind is not None else "a record without a type")
        try:
            return _record(d)
        except _BAD_RECORD as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise self.error(lineno, f"invalid {kind} record: {reason}") from None

    def error(self, lineno: int, what: str) -> RecordingError:
        return RecordingError(f"{self.path}: line {lineno}: {what}")


def _looks_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode()
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 3  # not merely a character cut by the sample's end
    return False


class _Source:
    """The file's content as blocks of complete lines, decompressed, with
    positions for messages. After the blocks, `tail` holds the bytes after
    the last newline and `cut_off` a message when a gzip stream ended early."""

    def __init__(self, path: str, compressed: bool) -> None:
        self.path = path
        self.compressed = compressed
        self.tail = b""
        self.tail_lineno = 1
        self.cut_off: str | None = None

    def blocks(self, f: BinaryIO) -> Iterator[tuple[int, list[str]]]:
        """(number of the first line, lines) for each block of complete lines."""
        lineno, offset = 1, 0
        pending: list[bytes] = []
        pending_size = 0
        chunks = self._decompressed(f) if self.compressed else iter(lambda: f.read(READ_CHUNK), b"")
        for data in chunks:
            if offset == 0 and pending_size == 0:
                self._check_start(data)
            end = data.rfind(b"\n")
            if end < 0:
                pending.append(data)
                pending_size += len(data)
                if pending_size > MAX_LINE:
                    raise RecordingError(
                        f"{self.path}: line {lineno}: longer than {MAX_LINE >> 20} MiB: not a proctrace recording"
                    )
                continue
            block = b"".join([*pending, data[:end]]) if pending else data[:end]
            pending, pending_size = [data[end + 1 :]], len(data) - end - 1
            try:
                text = block.decode()
            except UnicodeDecodeError as exc:
                line_at = lineno + block.count(b"\n", 0, exc.start)
                raise RecordingError(
                    f"{self.path}: line {line_at}, byte {offset + exc.start}{self._of_what()}: "
                    "binary data, not a proctrace recording"
                ) from None
            lines = text.split("\n")
            count = len(lines)
            yield lineno, lines
            lineno += count
            offset += len(block) + 1
        self.tail = b"".join(pending)
        self.tail_lineno = lineno

    def _check_start(self, data: bytes) -> None:
        """Refuse a file that is not a recording at its first bytes, rather
        than after reading a gigabyte in search of a line's end."""
        if data[:1] == b"{":
            return
        if _looks_binary(data[:512]):
            raise RecordingError(f"{self.path}: binary data at byte 0{self._of_what()}, not a proctrace recording")
        raise RecordingError(f"{self.path}: line 1: not a proctrace recording (no header)")

    def _of_what(self) -> str:
        return " of the decompressed data" if self.compressed else ""

    def _decompressed(self, f: BinaryIO) -> Iterator[bytes]:
        """The gzip members, one after another, as zcat reads them. A stream
        cut short ends the data (setting `cut_off`) rather than failing."""
        inflate = zlib.decompressobj(31)
        started = False  # the current member has begun
        position = 0  # compressed bytes consumed
        while data := f.read(READ_CHUNK):
            while data:
                if not started:
                    stripped = data.lstrip(b"\0")  # gzip allows zeros after a member
                    position += len(data) - len(stripped)
                    data = stripped
                    if not data:
                        break
                    started = True
                try:
                    out = inflate.decompress(data, READ_CHUNK)
                except zlib.error as exc:
                    raise RecordingError(f"{self.path}: corrupt gzip data after byte {position}: {exc}") from None
                rest = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
                position += len(data) - len(rest)
                data = rest
                if inflate.eof:
                    inflate, started = zlib.decompressobj(31), False
                if out:
                    yield out
        if started:
            self.cut_off = f"{self.path}: the gzip stream is cut off at byte {position}; read what it holds"


class Recording:
    """A recording opened for reading. Its records are read from the file each
    time records() or events() is iterated: streaming, so memory does not grow
    with the file. `lost_records`, `trailer` and `warnings` are complete once
    an iteration has run to its end."""

    def __init__(self, path: str, header: dict[str, Any], snapshot: list[ProcInfo], compressed: bool) -> None:
        self.path = path
        self.header = header
        self.snapshot = snapshot
        self.clock = Clock(header["boot_offset_ns"])
        self.lost_records: list[LostRecord] = []
        self.trailer: dict[str, Any] | None = None
        self.warnings: list[str] = []
        # Whether exec records carry path_search (every proctrace since it was
        # decided writes it): None until records() has read an exec record.
        self.exec_path_search: bool | None = None
        self._compressed = compressed

    def events(self) -> Iterator[list[Event]]:
        """Batches of events in file order; lost reports go to lost_records."""
        for item in self.records():
            if type(item) is list:
                yield item

    def records(self) -> Iterator[list[Event] | LostRecord]:
        """Batches of events and, between them in file order, the reports of
        lost events. Raises RecordingError on a bad record."""
        try:
            yield from self._records()
        except OSError as exc:  # EIO, say
            raise RecordingError(f"cannot read {self.path}: {exc.strerror}") from None

    def _records(self) -> Iterator[list[Event] | LostRecord]:
        self.lost_records, self.trailer, self.warnings = [], None, []
        parser = _Parser(self.path)
        source = _Source(self.path, self._compressed)
        count = 0
        trailer_line = 0
        with _open_for_reading(self.path) as f:
            for first_lineno, lines in source.blocks(f):
                if first_lineno == 1:
                    lines, first_lineno = lines[1:], 2  # the header, which open_recording has read
                    if not lines:
                        continue
                if trailer_line:
                    raise parser.error(first_lineno, f"a record after the trailer (line {trailer_line})")
                if self.exec_path_search is None:
                    self.exec_path_search = _exec_path_search(lines)
                items, only_events = parser.parse(lines, first_lineno)
                if only_events:
                    count += len(items)
                    yield items
                    continue
                batch: list[Event] = []
                for i, item in enumerate(items):
                    if trailer_line:
                        raise parser.error(first_lineno + i, f"a record after the trailer (line {trailer_line})")
                    if type(item) is LostRecord:
                        if batch:
                            yield batch
                            batch = []
                        self.lost_records.append(item)
                        yield item
                    elif type(item) is _Trailer:
                        self.trailer = dict(item)
                        trailer_line = first_lineno + i
                    else:
                        batch.append(item)
                        count += 1
                if batch:
                    yield batch
            final = self._final_record(source, parser)
        if final is not None:
            if trailer_line:
                raise parser.error(source.tail_lineno, f"a record after the trailer (line {trailer_line})")
            if type(final) is _Trailer:
                self.trailer = dict(final)
            elif type(final) is LostRecord:
                self.lost_records.append(final)
                yield final
            else:
                count += 1
                yield [final]
        if source.cut_off:
            self.warnings.append(source.cut_off)
        self._check_end(count)

    def _final_record(self, source: _Source, parser: _Parser) -> Any:
        """The bytes after the last newline: a record cut off mid-write is
        skipped with a warning; a complete one (only its newline missing) is used."""
        tail = source.tail
        lineno = source.tail_lineno
        if lineno == 1 or not tail.strip():
            return None  # nothing, or the header alone without its newline
        try:
            line = tail.decode()
            _loads(line)
        except (ValueError, RecursionError):
            self.warnings.append(
                f"{self.path}: line {lineno}: the last record is incomplete (cut off mid-write); "
                "skipped it and read everything before it"
            )
            return None
        if self.exec_path_search is None:
            self.exec_path_search = _exec_path_search([line])
        return parser.parse_line(line, lineno)

    def _check_end(self, count: int) -> None:
        trailer = self.trailer
        if trailer is None:
            self.warnings.append(f"{self.path}: {NO_TRAILER}")
        elif trailer["events"] != count:
            self.warnings.append(
                f"{self.path}: the trailer counts {trailer['events']} events but the recording holds {count}"
            )


def _open_for_reading(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from None


def _detect_compression(path: str, f: BinaryIO) -> bool:
    """True for gzip; refuses other compressions, and a .gz that is not gzip."""
    start = f.read(8)
    if path.endswith(".zst") or start.startswith(b"\x28\xb5\x2f\xfd"):
        raise RecordingError(f"{path}: {_ZSTD_UNSUPPORTED}")
    if start.startswith(_GZIP_MAGIC):
        return True
    if path.endswith(".gz") and start:
        raise RecordingError(f"{path}: not gzip data (byte 0), although the name ends in .gz")
    for magic, name in _OTHER_COMPRESSIONS.items():
        if start.startswith(magic):
            raise RecordingError(f"{path}: {name}-compressed data (byte 0); proctrace reads plain and .gz recordings")
    return False


def open_recording(path: str) -> Recording:
    """Open a recording and read its header. Raises RecordingError when the
    file is not a recording this proctrace can read; records are checked as
    they are read (Recording.records)."""
    with _open_for_reading(path) as f:
        try:
            compressed = _detect_compression(path, f)
            f.seek(0)
            source = _Source(path, compressed)
            first = next(source.blocks(f), None)
        except OSError as exc:  # EISDIR, EIO
            raise RecordingError(f"cannot read {path}: {exc.strerror}") from None
    if first is not None:
        line, complete = first[1][0], True
    elif source.tail:
        line, complete = source.tail.decode(errors="replace"), False
    elif source.cut_off:
        raise RecordingError(f"{path}: the gzip stream is cut off before the header")
    else:
        raise RecordingError(f"{path}: empty file, not a proctrace recording")
    header = _parse_header(path, line, complete)
    return Recording(path, header, _parse_snapshot(path, header["snapshot"]), compressed)


def _parse_header(path: str, line: str, complete: bool) -> dict[str, Any]:
    def bad(what: str) -> RecordingError:
        return RecordingError(f"{path}: line 1: {what}")

    try:
        header = _loads(line)
    except (ValueError, RecursionError):
        if not complete:
            raise bad("the header is incomplete (the recording was cut off while it was written)") from None
        raise bad("not a proctrace recording (the header is not valid JSON)") from None
    if type(header) is not dict or header.get("type") != "header" or header.get("format") != FORMAT:
        raise bad("not a proctrace recording (no proctrace-recording header)")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise bad(f"unknown recording format version {version!r}")
    if version > VERSION:
        raise RecordingError(
            f"{path}: written by a newer proctrace (recording format version {version}; "
            f"this proctrace reads version {VERSION}): upgrade proctrace to read it"
        )
    offset = header.get("boot_offset_ns")
    if type(offset) is not int or not -TS_LIMIT < offset < TS_LIMIT:
        raise bad("invalid header: boot_offset_ns must be an integer of at most 63 bits")
    if type(header.get("snapshot")) is not list:
        raise bad("invalid header: snapshot must be a list")
    return header


def _parse_snapshot(path: str, entries: list[Any]) -> list[ProcInfo]:
    out = []
    for i, entry in enumerate(entries):
        try:
            if type(entry) is not dict:
                raise TypeError("not an object")
            out.append(ProcInfo.from_dict(entry))
        except _BAD_RECORD as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise RecordingError(f"{path}: line 1: invalid snapshot entry {i}: {reason}") from None
    return out
