"""The ring buffer protocol, on a memory file laid out as the kernel lays out a
BPF ring buffer: consumer page, producer page, then the data area twice."""

from __future__ import annotations

import mmap
import os
import struct

import pytest
from proctrace.kernel.ringbuf import BUSY_BIT, DISCARD_BIT, HEADER_SIZE, RingReader, python_walk

PAGE = mmap.PAGESIZE
SIZE = PAGE  # data bytes: one page, as with --buffer-size 4K


class FakeRing:
    def __init__(self) -> None:
        self.fd = os.memfd_create("ring")
        os.ftruncate(self.fd, PAGE + PAGE + 2 * SIZE)
        self.mem = mmap.mmap(self.fd, PAGE + PAGE + 2 * SIZE)
        self.prod = 0

    def data_at(self, pos: int) -> int:
        return 2 * PAGE + (pos & (SIZE - 1))

    def put(self, payload: bytes, flags: int = 0) -> None:
        record = struct.pack("<II", len(payload) | flags, 0) + payload
        record += b"\0" * (-len(record) % 8)
        for i, byte in enumerate(record):  # the kernel maps the data twice: mirror it
            at = (self.prod + i) & (SIZE - 1)
            self.mem[2 * PAGE + at] = byte
            self.mem[2 * PAGE + SIZE + at] = byte
        self.prod += len(record)
        struct.pack_into("<Q", self.mem, PAGE, self.prod)

    def consumer_pos(self) -> int:
        return struct.unpack_from("<Q", self.mem, 0)[0]

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)


def raw(chunk: bytes, offset: int, size: int) -> bytes:
    return chunk[offset : offset + size]


def drain(reader: RingReader, out: list[bytes]) -> int:
    errors: list[ValueError] = []
    count = reader.drain(python_walk(raw), out, errors)
    assert not errors
    return count


@pytest.fixture
def ring():
    fake = FakeRing()
    yield fake
    fake.close()


def test_records_come_out_in_order_and_the_consumer_position_is_published(ring):
    reader = RingReader(ring.fd, SIZE)
    ring.put(b"first")
    ring.put(b"second record")
    out: list[bytes] = []
    assert drain(reader, out) == 2
    assert out == [b"first", b"second record"]
    assert ring.consumer_pos() == ring.prod
    assert drain(reader, out) == 0
    reader.close()


def test_a_record_still_being_written_stops_the_drain(ring):
    reader = RingReader(ring.fd, SIZE)
    ring.put(b"done")
    ring.put(b"in flight", flags=BUSY_BIT)
    ring.put(b"after")
    out: list[bytes] = []
    assert drain(reader, out) == 1
    assert out == [b"done"]
    assert ring.consumer_pos() == HEADER_SIZE + 8  # just past "done"
    reader.close()


def test_discarded_records_are_skipped(ring):
    reader = RingReader(ring.fd, SIZE)
    ring.put(b"dropped", flags=DISCARD_BIT)
    ring.put(b"kept")
    out: list[bytes] = []
    assert drain(reader, out) == 1 and out == [b"kept"]
    reader.close()


def test_a_record_across_the_end_of_the_data_area_comes_out_whole(ring):
    reader = RingReader(ring.fd, SIZE)
    filler = b"x" * (SIZE - 2 * HEADER_SIZE - 16)
    ring.put(filler)
    out: list[bytes] = []
    drain(reader, out)
    wrapping = bytes(range(64))  # starts 16 bytes before the end, ends after the start
    ring.put(wrapping)
    out.clear()
    assert drain(reader, out) == 1
    assert out == [wrapping]
    assert ring.consumer_pos() == ring.prod
    reader.close()


def test_a_record_the_decoder_rejects_is_reported_and_the_walk_goes_on(ring):
    reader = RingReader(ring.fd, SIZE)
    ring.put(b"good")
    ring.put(b"bad!")
    ring.put(b"also good")

    def picky(chunk: bytes, offset: int, size: int) -> bytes:
        if chunk[offset : offset + size] == b"bad!":
            raise ValueError("not an event")
        return chunk[offset : offset + size]

    out: list[bytes] = []
    errors: list[ValueError] = []
    assert reader.drain(python_walk(picky), out, errors) == 3
    assert out == [b"good", b"also good"]
    assert [str(e) for e in errors] == ["not an event"]
    assert ring.consumer_pos() == ring.prod  # the rejected record is consumed, not retried
    reader.close()
