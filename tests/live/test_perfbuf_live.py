"""The perf buffer reader against the kernel: a tiny bcc program outputs one
sample per lseek(2) this test makes on its own descriptor, and PerfBuffers
(not bcc's open_perf_buffer) reads them.

Each sample carries the lseek offset the test chose, the CPU it ran on and a
per-CPU sequence number, so the tests know exactly what must arrive, where
and in what order. The test pins itself to one CPU at a time, so it knows
which CPU's buffer each sample goes to.
"""

from __future__ import annotations

import os
import select
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proctrace.kernel.bcc import load_bcc
from proctrace.kernel.bpfsys import BpfMap
from proctrace.kernel.perfbuf import PerfBuffers, online_cpus

from tests.environment import requires

pytestmark = pytest.mark.live

MAGIC = 0x5EC0FFEE
_SAMPLE = struct.Struct("<QIIII")  # struct sample below: 24 bytes, no holes

PROGRAM = r"""
struct sample {
    u64 value;
    u32 cpu;
    u32 pid;
    u32 magic;
    u32 seq;
};

BPF_PERF_OUTPUT(out);
BPF_PERCPU_ARRAY(seqs, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_lseek) {
    if (bpf_get_current_pid_tgid() >> 32 != PID || args->fd != FD)
        return 0;
    u32 zero = 0;
    u64 *seq = seqs.lookup(&zero);
    if (!seq)
        return 0;
    struct sample s = {
        .value = args->offset,
        .cpu = bpf_get_smp_processor_id(),
        .pid = PID,
        .magic = MAGIC,
        .seq = (u32)*seq,
    };
    *seq += 1;
    out.perf_submit(args, &s, sizeof(s));
    return 0;
}
"""


@dataclass(frozen=True)
class Sample:
    value: int
    cpu: int
    seq: int
    raw_size: int


def decode(chunk: bytes, offset: int, size: int) -> Sample:
    if size < _SAMPLE.size:
        raise ValueError(f"a sample of {size} bytes")
    value, cpu, pid, magic, seq = _SAMPLE.unpack_from(chunk, offset)
    if magic != MAGIC or pid != os.getpid():
        raise ValueError(f"not this test's sample: magic {magic:#x}, pid {pid}")
    return Sample(value, cpu, seq, size)


class Source:
    """The loaded program and the descriptor whose lseeks it reports."""

    def __init__(self, bpf: Any, fd: int) -> None:
        self.bpf, self.fd = bpf, fd
        self.map_fd: int = bpf[b"out"].map_fd

    def send(self, values: list[int]) -> None:
        for value in values:
            os.lseek(self.fd, value, os.SEEK_SET)


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    requires(
        Path("/sys/kernel/tracing/events/syscalls/sys_enter_lseek").is_dir(),
        "the syscalls:sys_enter_lseek tracepoint (CONFIG_FTRACE_SYSCALLS)",
    )
    fd = os.open(os.devnull, os.O_RDONLY)
    bcc = load_bcc()
    bpf = bcc.BPF(text=PROGRAM.encode(), cflags=[f"-DPID={os.getpid()}", f"-DFD={fd}", f"-DMAGIC={MAGIC}"])
    try:
        yield Source(bpf, fd)
    finally:
        bpf.cleanup()
        os.close(fd)


@pytest.fixture
def pinned() -> Iterator[None]:
    """Restores this process's CPU affinity after a test moved it around."""
    before = os.sched_getaffinity(0)
    yield
    os.sched_setaffinity(0, before)


def drain(buffers: PerfBuffers) -> list[Sample]:
    out: list[Sample] = []
    errors: list[ValueError] = []
    count = buffers.drain(decode, out, errors)
    assert errors == []
    assert count == len(out)
    return out


def test_every_sample_arrives_once_in_per_cpu_order_with_its_contents(source: Source, pinned: None) -> None:
    cpus = sorted(online_cpus() & os.sched_getaffinity(0))
    buffers = PerfBuffers(source.map_fd, 16)
    try:
        assert buffers.cpus == sorted(online_cpus())
        assert len(buffers.fds) == len(buffers.cpus)
        sent: dict[int, list[int]] = {cpu: [] for cpu in cpus}
        value = 1000
        for round_ in range(3):
            for cpu in cpus:  # back and forth, so every buffer holds samples from several stays
                os.sched_setaffinity(0, {cpu})
                values = list(range(value, value + 100 + 17 * round_))
                value += len(values)
                source.send(values)
                sent[cpu] += values
        got = drain(buffers)
        assert drain(buffers) == []  # data_tail was published: nothing comes twice
        assert buffers.lost_records == 0
    finally:
        buffers.close()

    # The drain goes CPU by CPU, each in the order its samples were written.
    assert [s.value for s in got] == [v for cpu in cpus for v in sent[cpu]]
    for cpu in cpus:
        mine = [s for s in got if s.cpu == cpu]
        assert [s.value for s in mine] == sent[cpu]
        assert [s.seq - mine[0].seq for s in mine] == list(range(len(mine)))
    # 24 bytes of program data, padded by the kernel so the 8 + 4 + raw record is 8-aligned.
    assert {s.raw_size for s in got} == {28}


def test_samples_wrapping_around_a_one_page_buffer_arrive_whole(source: Source, pinned: None) -> None:
    os.sched_setaffinity(0, {min(online_cpus() & os.sched_getaffinity(0))})
    buffers = PerfBuffers(source.map_fd, 1)
    try:
        got: list[Sample] = []
        sent: list[int] = []
        for round_ in range(40):  # 40 rounds of 50 40-byte records: 20 passes over 4 KiB, 4096 % 40 != 0
            values = [round_ << 32 | i for i in range(50)]
            source.send(values)
            sent += values
            got += drain(buffers)
        assert buffers.lost_records == 0
    finally:
        buffers.close()
    assert [s.value for s in got] == sent


def test_a_flooded_one_page_buffer_counts_what_it_could_not_keep(source: Source, pinned: None) -> None:
    cpu = min(online_cpus() & os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one CPU: its buffer gets every sample and every loss
    buffers = PerfBuffers(source.map_fd, 1)
    try:
        flood = list(range(1, 2001))
        source.send(flood)
        kept = drain(buffers)
        assert buffers.lost_records == 0  # the kernel reports a loss only with the next sample that fits
        source.send([999_999])
        after = drain(buffers)
        lost = buffers.lost_records
    finally:
        buffers.close()
    assert 0 < len(kept) < len(flood)
    assert lost > 0
    assert len(kept) + len(after) + lost == len(flood) + 1
    # A full buffer keeps the oldest samples and drops the newest: nothing is overwritten.
    assert [s.value for s in kept] == flood[: len(kept)]
    assert [s.value for s in after] == [999_999]


def test_a_cpus_descriptor_becomes_readable_after_wakeup_events_samples(source: Source, pinned: None) -> None:
    cpu = min(online_cpus() & os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    buffers = PerfBuffers(source.map_fd, 4, wakeup_events=5)
    try:
        poller = select.poll()
        poller.register(buffers.fds[buffers.cpus.index(cpu)], select.POLLIN)
        source.send([1, 2, 3, 4])
        assert poller.poll(200) == []
        source.send([5])
        assert poller.poll(5000) != []
        assert [s.value for s in drain(buffers)] == [1, 2, 3, 4, 5]
    finally:
        buffers.close()


def test_closing_takes_the_events_out_of_the_map(source: Source, pinned: None) -> None:
    buffers = PerfBuffers(source.map_fd, 1)
    cpus = buffers.cpus
    buffers.close()
    buffers.close()  # a second close does nothing
    # A perf event array cannot be looked up from user space (ENOTSUPP) and its
    # keys are every index, full or not: deleting tells whether an entry was there.
    table = BpfMap(source.map_fd)
    assert [table.delete(struct.pack("<I", cpu)) for cpu in cpus] == [False] * len(cpus)
