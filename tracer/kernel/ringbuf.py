"""Reading a BPF ring buffer straight from its shared memory.

bcc's ring buffer consumer calls back into Python through ctypes for every
record (~0.8 us each). The kernel's ring buffer is plain shared memory that a
consumer may map: a read-write page holding the consumer position, then a
read-only page holding the producer position, followed by the data area
mapped twice in a row, so no record ever wraps. Walking it from Python costs
a struct read and a slice per record. The protocol is the one libbpf's
ringbuf.c implements:

  - each record starts with an 8-byte header: u32 length (bit 31: still being
    written, stop here; bit 30: discarded, skip), u32 page offset;
  - records are 8-byte aligned; the consumer publishes its new position when
    done, which frees the space for the producer.

x86-64 and arm64 Linux order these plain loads and stores as libbpf's
acquire/release pairs need, for a single consumer thread as here.
"""

from __future__ import annotations

import functools
import mmap
import struct
from collections.abc import Callable
from typing import TypeVar

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

T = TypeVar("T")


# A walk over a copy of ring data: (chunk, out, errors) -> (bytes walked,
# records, stopped at a busy record).
Walk = Callable[[bytes, list[T], list[ValueError]], tuple[int, int, bool]]


def walk_records(
    decode: Callable[[bytes, int, int], T], chunk: bytes, out: list[T], errors: list[ValueError]
) -> tuple[int, int, bool]:
    """The records of `chunk`, a copy of ring data from the consumer position:
    each is decoded where it lies (`decode(chunk, offset, size)`) and appended
    to `out`; one `decode` rejects with a ValueError goes to `errors` and the
    walk goes on. Returns the bytes walked, the records counted (discarded
    ones not) and whether the walk stopped at a record still being written.
    The compiled decoder's walk_ring (tracer/kernel/_fastwire.c) does the same."""
    u32 = _U32.unpack_from
    append = out.append
    count = 0
    offset, end = 0, len(chunk)
    while offset < end:
        length = u32(chunk, offset)[0]
        if length & BUSY_BIT:
            return offset, count, True
        size = length & ~(BUSY_BIT | DISCARD_BIT)
        if not length & DISCARD_BIT:
            try:
                append(decode(chunk, offset + HEADER_SIZE, size))
            except ValueError as exc:
                errors.append(exc)
            count += 1
        offset += (size + HEADER_SIZE + 7) & ~7
    return offset, count, False


def python_walk(decode: Callable[[bytes, int, int], T]) -> Walk[T]:
    """walk_records with `decode`, as RingReader.drain takes it."""
    return functools.partial(walk_records, decode)


# The data window kept mapped from one drain to the next: a storm's drain
# reads ~200 KB, so a window of this size serves several drains in a row
# before the next mmap (each costs the kernel a mapping of all its pages).
WINDOW_BYTES = 1 << 20


class RingReader:
    """Drains one BPF_MAP_TYPE_RINGBUF map of `size` data bytes (a power of two).

    Only the two position pages and a window of the data (WINDOW_BYTES, or
    what one drain needs if more) stay mapped, moved on when a drain reads
    past it. The kernel maps every page of a ring's mapping at once, and a
    4 MiB ring mapped twice over would otherwise stand in the session's RSS
    as 8 MiB it never allocated (the ring is kernel memory, there whether
    mapped or not; README, Performance, counts it apart).
    """

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self._fd = map_fd
        self._mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data_start = 2 * page
        self._window: mmap.mmap | None = None
        self._window_start = 0

    def _copy(self, cons: int, length: int) -> bytes:
        """`length` bytes of data from position `cons`: contiguous, since the
        kernel maps the data area twice in a row."""
        at = cons & self._mask
        start = self._window_start
        if self._window is None or at < start or at + length > start + len(self._window):
            self._map_window(at, length)
            start = self._window_start
        assert self._window is not None
        return self._window[at - start : at - start + length]

    def _map_window(self, at: int, length: int) -> None:
        page = mmap.PAGESIZE
        first = at & ~(page - 1)
        needed = (at - first + length + page - 1) & ~(page - 1)
        # The data area is mapped twice in a row: nothing can be mapped past 2 x size.
        span = min(max(WINDOW_BYTES, needed), 2 * (self._mask + 1) - first)
        if self._window is not None:
            self._window.close()
            self._window = None
        self._window = mmap.mmap(self._fd, span, mmap.MAP_SHARED, mmap.PROT_READ, offset=self._data_start + first)
        self._window_start = first

    def drain(self, walk: Walk[T], out: list[T], errors: list[ValueError]) -> int:
        """Append every complete record, decoded, to `out`; returns how many records.

        The data between the consumer and producer positions is copied out in
        one slice, which `walk` (walk_records with a decoder, or the compiled
        decoder's walk_ring) decodes record by record. A record found still
        busy ends the walk; the next drain resumes there.
        """
        producer, consumer = self._producer, self._consumer
        count = 0
        cons = _U64.unpack_from(consumer, 0)[0]
        while True:
            prod = _U64.unpack_from(producer, 0)[0]
            if cons >= prod:
                return count
            consumed, records, busy = walk(self._copy(cons, prod - cons), out, errors)
            count += records
            cons += consumed
            _U64.pack_into(consumer, 0, cons)
            if busy:
                return count

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
        self._producer.close()
        self._consumer.close()
