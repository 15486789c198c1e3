"""The perf buffer's record walk, on a synthetic data area laid out as the kernel
writes one: perf_event_header records, 8-byte aligned, wrapping at the end of an
area that is mapped once."""

from __future__ import annotations

import os
import struct

import pytest
from proctrace.kernel.perfbuf import (
    HEADER_SIZE,
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PerfBuffers,
    parse_cpu_list,
    walk_records,
)

SIZE = 256  # data bytes: small, so that records wrap after a few
BASE = 64  # where the area starts in the mapping (a page in the kernel's)
PERF_RECORD_THROTTLE = 5


class FakeArea:
    """A perf data area and the kernel's free-running head position."""

    def __init__(self, start: int = 0) -> None:
        self.mem = bytearray(b"\xee" * (BASE + SIZE))  # stale bytes, as in a reused buffer
        self.tail = self.head = start

    def put(self, record: bytes) -> None:
        for i, byte in enumerate(record):
            self.mem[BASE + ((self.head + i) % SIZE)] = byte
        self.head += len(record)

    def walk(self, decode=None) -> tuple[list[bytes], list[ValueError], int, int]:
        out: list[bytes] = []
        errors: list[ValueError] = []
        samples, lost = walk_records(bytes(self.mem), BASE, SIZE, self.tail, self.head, decode or raw, out, errors)
        self.tail = self.head
        return out, errors, samples, lost


def sample(payload: bytes) -> bytes:
    """A PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW: raw_size counts the padding to 8 bytes,
    and the padding is whatever was in the buffer (the kernel skips it unwritten)."""
    raw_size = len(payload) + (-(HEADER_SIZE + 4 + len(payload)) % 8)
    body = struct.pack("<I", raw_size) + payload.ljust(raw_size, b"\xaa")
    return struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, HEADER_SIZE + len(body)) + body


def lost(count: int) -> bytes:
    return struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 7, count)


def raw(chunk: bytes, offset: int, size: int) -> bytes:
    return chunk[offset : offset + size]


def test_samples_come_out_in_order_with_raw_size_including_the_kernels_padding():
    area = FakeArea()
    area.put(sample(b"abcd"))  # 8 + 4 + 4: no padding
    area.put(sample(b"hello"))  # 8 + 4 + 5: padded by 7
    out, errors, samples, lost_count = area.walk()
    assert (samples, lost_count, errors) == (2, 0, [])
    assert out == [b"abcd", b"hello\xaa\xaa\xaa\xaa\xaa\xaa\xaa"]


def test_a_sample_that_wraps_past_the_end_of_the_area_arrives_whole():
    area = FakeArea(start=SIZE - 16)  # 16 bytes before the end: the 40-byte record wraps
    payload = bytes(range(28))
    area.put(sample(payload))
    area.put(sample(b"next"))  # lies wholly after the wrap
    out, errors, samples, _ = area.walk()
    assert errors == []
    assert samples == 2
    assert out == [payload, b"next"]


def test_positions_are_free_running_and_wrap_many_times():
    area = FakeArea(start=10 * SIZE + 8)
    for round_ in range(20):
        batch = [bytes([round_, i]) * 9 for i in range(3)]  # 18 bytes: 32-byte records, misaligned with SIZE
        for payload in batch:
            area.put(sample(payload))
        out, errors, _, _ = area.walk(lambda chunk, offset, size: chunk[offset : offset + 18])
        assert errors == []
        assert out == batch
    assert area.head > 12 * SIZE


def test_a_header_split_by_the_end_of_the_area_is_reassembled():
    area = FakeArea(start=SIZE - 4)  # not 8-aligned: the kernel's alignment never does this
    area.put(sample(b"split header"))
    out, errors, samples, _ = area.walk()
    assert (errors, samples) == ([], 1)
    assert out[0][:12] == b"split header"


def test_a_lost_record_adds_its_count_and_is_not_a_sample():
    area = FakeArea()
    area.put(sample(b"before"))
    area.put(lost(1234))
    area.put(sample(b"after"))
    out, errors, samples, lost_count = area.walk()
    assert (samples, lost_count, errors) == (2, 1234, [])
    assert [o.rstrip(b"\xaa") for o in out] == [b"before", b"after"]


def test_a_lost_record_that_wraps_is_counted():
    area = FakeArea(start=SIZE - 8)
    area.put(lost(99))
    _, errors, samples, lost_count = area.walk()
    assert (samples, lost_count, errors) == (0, 99, [])


def test_records_of_other_types_are_skipped():
    area = FakeArea()
    area.put(struct.pack("<IHHQQQ", PERF_RECORD_THROTTLE, 0, 32, 1, 2, 3))
    area.put(sample(b"kept"))
    out, errors, samples, lost_count = area.walk()
    assert (out, errors, samples, lost_count) == ([b"kept"], [], 1, 0)


def test_a_sample_the_decoder_rejects_goes_to_errors_and_the_walk_goes_on():
    def picky(chunk: bytes, offset: int, size: int) -> bytes:
        data = raw(chunk, offset, size)
        if data.startswith(b"bad"):
            raise ValueError("rejected")
        return data

    area = FakeArea(start=SIZE - 48)
    area.put(sample(b"bad first"))  # 24 bytes, before the end
    area.put(sample(b"good"))  # 16 bytes, before the end
    area.put(sample(b"bad wraps"))  # 24 bytes from 8 before the end
    area.put(sample(b"good too"))
    out, errors, samples, _ = area.walk(picky)
    assert [o.rstrip(b"\xaa") for o in out] == [b"good", b"good too"]
    assert [str(e) for e in errors] == ["rejected", "rejected"]
    assert samples == 4


def test_a_zero_length_header_ends_the_walk_with_an_error_instead_of_looping():
    area = FakeArea()
    area.put(sample(b"fine"))
    area.put(struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, 0) + bytes(8))
    out, errors, samples, _ = area.walk()
    assert out == [b"fine"] and samples == 1
    assert len(errors) == 1 and "0 bytes" in str(errors[0])


def test_a_record_reaching_past_head_is_an_error_not_a_read_of_unwritten_bytes():
    area = FakeArea()
    record = sample(b"x" * 20)
    area.put(record)
    area.head -= 8  # the header claims more than was published
    out, errors, samples, _ = area.walk()
    assert (out, samples) == ([], 0)
    assert len(errors) == 1


def test_nothing_between_tail_and_head_decodes_nothing():
    area = FakeArea(start=40)
    assert area.walk() == ([], [], 0, 0)


def test_a_head_more_than_the_area_ahead_of_tail_is_an_error():
    out: list[bytes] = []
    errors: list[ValueError] = []
    assert walk_records(bytes(BASE + SIZE), BASE, SIZE, 0, SIZE + 8, raw, out, errors) == (0, 0)
    assert len(errors) == 1 and out == []


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0\n", [0]), ("0-3\n", [0, 1, 2, 3]), ("0,2-3,7", [0, 2, 3, 7]), ("", [])],
)
def test_sysfs_cpu_lists_expand_to_every_cpu_named(text: str, cpus: list[int]):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("page_cnt", [0, 3, 6])
def test_page_counts_that_are_not_a_power_of_two_are_refused_before_opening_anything(page_cnt: int):
    with pytest.raises(ValueError, match="power of two"):
        PerfBuffers(-1, page_cnt)


def test_a_descriptor_that_is_not_a_bpf_map_is_refused_with_os_error():
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError, match=f"descriptor {read_end}"):
            PerfBuffers(read_end, 1)
    finally:
        os.close(read_end)
        os.close(write_end)
