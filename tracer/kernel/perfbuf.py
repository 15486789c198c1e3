"""Reading a BPF perf buffer (BPF_MAP_TYPE_PERF_EVENT_ARRAY) straight from its shared memory.

A BPF program's bpf_perf_event_output() writes into the ring buffer of a
perf event that user space opened on the program's CPU and put into the map
at that CPU's index. bcc's reader calls back into Python through ctypes for
every record; here each CPU's buffer is mapped and walked from Python, as
ringbuf.py does for the BPF ring buffer, so the caller can use either.

The layout is the kernel's UAPI (include/uapi/linux/perf_event.h):

  - the first page is struct perf_event_mmap_page; the kernel advances
    data_head after writing records, the reader advances data_tail after
    reading them. Mapping it writable tells the kernel to honour data_tail:
    it never overwrites unread records, it counts them lost and reports the
    count in a PERF_RECORD_LOST record once space is free again;
  - the data area (data_offset, data_size: a power of two of pages) follows,
    mapped once: a record may wrap from its end to its start;
  - each record starts with struct perf_event_header (u32 type, u16 misc,
    u16 size including the header), 8-byte aligned. A PERF_RECORD_SAMPLE
    with only PERF_SAMPLE_RAW carries u32 raw_size then raw_size bytes: the
    program's data, padded so that the record stays 8-byte aligned.

The kernel's side of the protocol (kernel/events/ring_buffer.c) writes the
data, then smp_wmb(), then data_head; it reads data_tail, then smp_mb(),
before writing. The reader must load data_head, then smp_rmb(), then the
data, then smp_mb(), then store data_tail. On x86-64 (TSO) loads are not
reordered with other loads and stores are not reordered before earlier
loads, so plain accesses in program order suffice and both barriers are
compiler barriers only, which Python does not need. arm64 reorders loads, so
there the reader calls a real fence (libatomic's atomic_thread_fence).
The counters are read and written through a native "Q" memoryview: one
aligned 8-byte access each, never torn.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import fcntl
import mmap
import os
import platform
import struct
from collections.abc import Callable
from typing import Protocol, TypeVar

from proctrace.kernel.bpfsys import (
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_FLAG_FD_CLOEXEC,
    BpfMap,
    PerfEventAttr,
    map_info,
    perf_event_open,
    possible_cpus,
)

T = TypeVar("T")

# include/uapi/linux/perf_event.h
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
_ATTR_DISABLED = 1 << 0  # the first bit of the flags word

HEADER_SIZE = 8  # struct perf_event_header
RAW_DATA_OFFSET = HEADER_SIZE + 4  # after the header and the u32 raw_size

# struct perf_event_mmap_page, in u64 words
_DATA_HEAD = 1024 // 8
_DATA_TAIL = 1032 // 8
_DATA_OFFSET = 1040 // 8
_DATA_SIZE = 1048 // 8

_HEADER = struct.Struct("<IHH")  # type, misc, size
_SAMPLE_HEAD = struct.Struct("<I2xHI")  # type, size, and a sample's raw_size
_U32 = struct.Struct("<I")
_LOST_BODY = struct.Struct("<QQ")  # u64 id, u64 lost


def _fence_for_this_machine() -> Callable[[], None] | None:
    """A full memory fence where plain loads and stores are not ordered enough; None on x86-64."""
    if platform.machine() == "x86_64":
        return None
    import ctypes.util  # here only: it imports tempfile and more

    name = ctypes.util.find_library("atomic")
    try:
        thread_fence = ctypes.CDLL(name or "libatomic.so.1").atomic_thread_fence
    except (OSError, AttributeError):
        raise OSError(
            errno_mod.ENOSYS,
            f"reading perf buffers on {platform.machine()} needs memory fences: install libatomic (libatomic1)",
        ) from None
    thread_fence.argtypes = [ctypes.c_int]
    thread_fence.restype = None
    seq_cst = 5  # memory_order_seq_cst
    return lambda: thread_fence(seq_cst)


class _Sliceable(Protocol):
    def __getitem__(self, index: slice, /) -> bytes: ...


def parse_cpu_list(text: str) -> list[int]:
    """The CPUs of a sysfs CPU list such as "0-3,6,8-9", in order."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def online_cpus() -> set[int]:
    with open("/sys/devices/system/cpu/online") as f:
        return set(parse_cpu_list(f.read()))


def _ring_bytes(data: _Sliceable, base: int, size: int, pos: int, count: int) -> bytes:
    """`count` bytes from position `pos` of the data area, as one bytes object even if they wrap."""
    start = pos & (size - 1)
    if start + count <= size:
        return data[base + start : base + start + count]
    first = data[base + start : base + size]
    return first + data[base : base + count - len(first)]


def _one_record(
    record: bytes,
    kind: int,
    length: int,
    decode: Callable[[bytes, int, int], T],
    out: list[T],
    errors: list[ValueError],
) -> tuple[int, int]:
    """A record copied on its own: (samples, lost) it counts for."""
    if kind == PERF_RECORD_SAMPLE:
        if length < RAW_DATA_OFFSET:
            errors.append(ValueError(f"perf sample of {length} bytes has no raw size"))
            return 1, 0
        raw_size = _U32.unpack_from(record, HEADER_SIZE)[0]
        if RAW_DATA_OFFSET + raw_size > length:
            errors.append(ValueError(f"perf sample of {length} bytes claims {raw_size} raw bytes"))
        else:
            try:
                out.append(decode(record, RAW_DATA_OFFSET, raw_size))
            except ValueError as exc:
                errors.append(exc)
        return 1, 0
    if kind == PERF_RECORD_LOST and length >= HEADER_SIZE + _LOST_BODY.size:
        return 0, _LOST_BODY.unpack_from(record, HEADER_SIZE)[1]
    return 0, 0


def walk_records(
    data: _Sliceable,
    base: int,
    size: int,
    tail: int,
    head: int,
    decode: Callable[[bytes, int, int], T],
    out: list[T],
    errors: list[ValueError],
) -> tuple[int, int]:
    """Decode the records between `tail` and `head` of a perf data area; returns (samples, lost).

    The data area is `size` bytes (a power of two) at `base` in `data`;
    `tail` and `head` are the free-running positions of struct
    perf_event_mmap_page. The contiguous part is copied in one slice and
    walked in place; a record that wraps past the end is copied into a bytes
    object of its own; the part after the wrap is one more slice. Each
    sample's raw data goes to `decode(chunk, offset, raw_size)`: a ValueError
    it raises goes to `errors` and the walk goes on. A record whose header
    cannot be right (shorter than a header, or reaching past `head`) means
    the buffer cannot be walked any further: a ValueError says so in
    `errors` and the rest is skipped, since the caller publishes `head` as
    consumed anyway.
    """
    # Locals, not globals, in the loop: this is the per-record cost.
    sample_head = _SAMPLE_HEAD.unpack_from
    append = out.append
    sample_type, lost_type, header_size, raw_offset = PERF_RECORD_SAMPLE, PERF_RECORD_LOST, HEADER_SIZE, RAW_DATA_OFFSET
    samples = lost = 0
    if not 0 <= head - tail <= size:
        errors.append(ValueError(f"perf buffer positions out of range: tail {tail}, head {head}, size {size}"))
        return samples, lost
    pos = tail
    while pos < head:
        start = pos & (size - 1)
        end = min(head - pos, size - start)
        chunk = data[base + start : base + start + end]
        offset = 0
        # Every record wholly inside this part whose header and raw size can be
        # read at once: all but the last few bytes' worth.
        while offset + raw_offset <= end:
            kind, length, raw_size = sample_head(chunk, offset)
            following = offset + length
            if following > end or length < header_size:
                break
            if kind == sample_type:
                samples += 1
                if raw_offset + raw_size > length:
                    errors.append(ValueError(f"perf sample of {length} bytes claims {raw_size} raw bytes"))
                else:
                    try:
                        append(decode(chunk, offset + raw_offset, raw_size))
                    except ValueError as exc:
                        errors.append(exc)
            elif kind == lost_type and length >= header_size + _LOST_BODY.size:
                lost += _LOST_BODY.unpack_from(chunk, offset + header_size)[1]
            offset = following
        pos += offset
        if pos >= head:
            break
        # The record at pos wraps to the start of the area, or ends this part
        # too close to its end for the loop above. Its header could wrap too
        # if records were not 8-aligned.
        if head - pos < header_size:
            errors.append(ValueError(f"{head - pos} bytes at position {pos} are too short for a perf record"))
            return samples, lost
        kind, _misc, length = _HEADER.unpack(_ring_bytes(data, base, size, pos, header_size))
        if length < header_size or pos + length > head:
            errors.append(ValueError(f"perf record of {length} bytes at position {pos}, head {head}"))
            return samples, lost
        record = _ring_bytes(data, base, size, pos, length)
        more_samples, more_lost = _one_record(record, kind, length, decode, out, errors)
        samples += more_samples
        lost += more_lost
        pos += length
    return samples, lost


class _CpuBuffer:
    """One CPU's perf event and its mapped buffer."""

    def __init__(self, cpu: int, fd: int, mem: mmap.mmap) -> None:
        self.cpu, self.fd, self.mem = cpu, fd, mem
        page = mmap.PAGESIZE
        # Native "Q" items: each counter is one aligned 8-byte load or store.
        self.meta = memoryview(mem)[:page].cast("Q")
        self.base = self.meta[_DATA_OFFSET] or page  # 0 before Linux 4.1: the data follows the first page
        self.size = self.meta[_DATA_SIZE] or len(mem) - page

    def release(self) -> None:
        self.meta.release()
        self.mem.close()


class PerfBuffers:
    """Every online CPU's BPF output perf event for one PERF_EVENT_ARRAY map.

    `page_cnt` data pages per CPU, a power of two. The events are in the map
    once this returns; `close()` takes them out again, so close this before
    the map's own descriptor. CPUs that are offline now get no event: what a
    program runs there later fails to output (bpf_perf_event_output returns
    -ENOENT), as with bcc and libbpf.
    """

    def __init__(self, map_fd: int, page_cnt: int, wakeup_events: int = 64) -> None:
        if page_cnt < 1 or page_cnt & (page_cnt - 1):
            raise ValueError(f"perf buffer pages per CPU must be a power of two, not {page_cnt}")
        if wakeup_events < 1:
            raise ValueError(f"wakeup_events must be at least 1, not {wakeup_events}")
        self.lost_records = 0
        self._fence = _fence_for_this_machine()
        self._buffers: list[_CpuBuffer] = []
        self._keys: list[bytes] = []
        self._closed = False
        try:
            kind = map_info(map_fd).type
        except OSError as exc:
            raise OSError(exc.errno, f"descriptor {map_fd} is not a BPF map: {exc.strerror}") from None
        if kind != BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            raise OSError(errno_mod.EINVAL, f"map {map_fd} is of type {kind}, not a PERF_EVENT_ARRAY")
        self._map = BpfMap(map_fd)
        online = online_cpus()
        try:
            for cpu in range(possible_cpus()):
                if cpu in online:
                    self._open(cpu, page_cnt, wakeup_events)
        except BaseException:
            self.close()
            raise

    def _open(self, cpu: int, page_cnt: int, wakeup_events: int) -> None:
        attr = PerfEventAttr()
        attr.type = PERF_TYPE_SOFTWARE
        attr.size = ctypes.sizeof(attr)
        attr.config = PERF_COUNT_SW_BPF_OUTPUT
        attr.sample_period = 1
        attr.sample_type = PERF_SAMPLE_RAW
        attr.flags = _ATTR_DISABLED  # enabled once its buffer is mapped, as the kernel's own users do
        attr.wakeup_events = wakeup_events
        try:
            fd = perf_event_open(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
        except OSError as exc:
            raise OSError(exc.errno, f"perf_event_open of a BPF output event on CPU {cpu}: {exc.strerror}") from None
        try:
            length = (1 + page_cnt) * mmap.PAGESIZE
            try:
                mem = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError as exc:
                raise OSError(exc.errno, f"mapping {length} bytes of CPU {cpu}'s perf buffer: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        buffer = _CpuBuffer(cpu, fd, mem)
        self._buffers.append(buffer)  # from here close() releases it
        try:
            fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        except OSError as exc:
            raise OSError(exc.errno, f"enabling CPU {cpu}'s perf event: {exc.strerror}") from None
        key = _U32.pack(cpu)
        try:
            self._map.update(key, _U32.pack(fd))
        except OSError as exc:
            raise OSError(
                exc.errno, f"putting CPU {cpu}'s perf event into map {self._map.name!r}: {exc.strerror}"
            ) from None
        self._keys.append(key)

    @property
    def fds(self) -> list[int]:
        """The perf event descriptors, in CPU order: poll them to wait for `wakeup_events` samples."""
        return [buffer.fd for buffer in self._buffers]

    @property
    def cpus(self) -> list[int]:
        """The CPUs that have an event, in order: those online when this was made."""
        return [buffer.cpu for buffer in self._buffers]

    def drain(self, decode: Callable[[bytes, int, int], T], out: list[T], errors: list[ValueError]) -> int:
        """Append every sample, decoded, to `out`, CPU by CPU; returns how many samples.

        Each sample's raw data is decoded where it lies in a copy of the
        buffer: `decode(chunk, offset, raw_size)`, raw_size counting the
        kernel's padding to 8 bytes. A sample `decode` rejects with a
        ValueError goes to `errors` and the walk goes on. PERF_RECORD_LOST
        counts add to `lost_records`.
        """
        fence = self._fence
        count = 0
        for buffer in self._buffers:
            meta = buffer.meta
            head = meta[_DATA_HEAD]
            tail = meta[_DATA_TAIL]
            if head == tail:
                continue
            if fence is not None:
                fence()  # smp_rmb(): no load of the data before the load of data_head
            samples, lost = walk_records(buffer.mem, buffer.base, buffer.size, tail, head, decode, out, errors)
            count += samples
            self.lost_records += lost
            if fence is not None:
                fence()  # smp_mb(): every load of the data done before the kernel may reuse the space
            meta[_DATA_TAIL] = head
        return count

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for key in self._keys:
            # The map holds each event until its entry goes: out of the map, the
            # kernel stops writing to a buffer nobody reads.
            with contextlib.suppress(OSError):
                self._map.delete(key)
        self._keys = []
        for buffer in self._buffers:
            with contextlib.suppress(OSError):
                fcntl.ioctl(buffer.fd, PERF_EVENT_IOC_DISABLE, 0)
            buffer.release()
            os.close(buffer.fd)
        self._buffers = []
