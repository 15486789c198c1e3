"""The one module that touches bcc: compile, attach, drain the buffer, count losses.

It hands on decoded events (tracer/kernel/wire.py); everything after that is pure
Python shared with replay.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
from types import ModuleType

from proctrace.kernel.layout import kernel_offsets
from proctrace.kernel.program import (
    EXEC_SYSCALLS,
    WAIT_SYSCALLS,
    ProgramOptions,
    build_source,
    shared_attachments,
    tracepoints_used,
)
from proctrace.kernel.ringbuf import RingReader
from proctrace.kernel.tracepoints import FormatError, TracepointFormat, read_format
from proctrace.kernel.wire import DecodeError, decode, decode_at
from proctrace.model.events import Event


class ProbeError(Exception):
    """The BPF programs could not be compiled, loaded or attached."""


def read_formats() -> dict[tuple[str, str], TracepointFormat]:
    """Format files of every tracepoint we use that this kernel has."""
    formats = {}
    optional = set(EXEC_SYSCALLS) | set(WAIT_SYSCALLS)
    for key in tracepoints_used():
        try:
            formats[key] = read_format(*key)
        except FormatError:
            if key not in optional:
                raise
    return formats


class Probe:
    """Loaded BPF programs and their output buffer.

    `drain()` returns the events that arrived since the last call, decoded,
    and the errors of any it could not decode. Events are consumed in batches
    on the caller's timer, never one wake-up per event.
    """

    def __init__(self, bcc: ModuleType, options: ProgramOptions) -> None:
        self.options = options
        self._batch: list[Event] = []
        self._errors: list[ValueError] = []
        formats = read_formats()
        source = build_source(kernel_offsets(), formats, options)
        try:
            self._bpf = bcc.BPF(text=source.encode())
            # bcc attaches TRACEPOINT_PROBE programs itself; these serve several tracepoints.
            for tracepoint, program in shared_attachments(formats):
                self._bpf.attach_tracepoint(tp=tracepoint, fn_name=program)
        except Exception as exc:  # bcc raises bare Exception for compile/load/attach failures
            raise ProbeError(f"the BPF program did not load: {exc}") from exc
        self._ring: RingReader | None = None
        if options.ring_buffer:
            self._open_ring_buffer(options.buffer_pages * mmap.PAGESIZE)
        else:
            on_record = self._on_record

            def on_perf(_cpu: int, data: int, size: int) -> None:
                on_record(data, size)

            # A wake-up every few dozen events at most: we drain on a timer anyway.
            # Losses are counted exactly by the BPF programs (lost()); bcc's own
            # callback would print an undercount of its own on stderr.
            self._bpf["events"].open_perf_buffer(
                on_perf, page_cnt=options.buffer_pages, lost_cb=lambda _count: None, wakeup_events=64
            )
            self._consume = self._bpf.perf_buffer_consume
        self._lost = self._bpf["lost_events"]
        # bcc attaches the programs as it loads them, before the perf buffer
        # exists: submits in that gap fail. They precede the session, so they
        # are not the session's losses.
        self._lost_before_start = self._lost_count()

    def _on_record(self, data: int, size: int) -> None:
        """bcc's callbacks: copy the record out of the buffer and decode it
        (an exception must not escape into bcc's C caller)."""
        try:
            self._batch.append(decode(ctypes.string_at(data, size)))
        except DecodeError as exc:
            self._errors.append(exc)

    def _open_ring_buffer(self, size: int) -> None:
        events = self._bpf["events"]
        try:
            ring = RingReader(events.map_fd, size)
        except (OSError, ValueError):
            on_record = self._on_record

            def on_ring(_ctx: object, data: int, size: int) -> int:
                on_record(data, size)
                return 0  # bcc's ring buffer callback must return an int

            events.open_ring_buffer(on_ring)
            self._consume = self._bpf.ring_buffer_consume
            return
        self._ring = ring
        self._consume = lambda: ring.drain(decode_at, self._batch, self._errors)

    def follow(self, pid: int) -> None:
        """Trace task `pid` (follow mode only), and what it forks with follow_children."""
        table = self._bpf["followed"]
        table[table.Key(pid)] = table.Leaf(1)

    def match_comm(self, comm: bytes) -> None:
        """Follow every process that execs into `comm` (at most 15 bytes)."""
        table = self._bpf["match_comms"]
        key = table.Key()
        key.comm = comm[:15]
        table[key] = table.Leaf(1)

    @property
    def buffer_bytes(self) -> int:
        """The ring buffer's size, or the perf buffer's per CPU."""
        return self.options.buffer_pages * mmap.PAGESIZE

    def drain(self) -> tuple[list[Event], list[ValueError]]:
        """The events decoded since the last call, and the errors of records
        that were not events."""
        self._consume()
        out, errors = self._batch, self._errors
        self._batch, self._errors = [], []  # handed over whole, not copied
        return out, errors

    def _lost_count(self) -> int:
        return sum(int(v) for v in self._lost[self._lost.Key(0)])

    def lost(self) -> int:
        """Events the BPF programs could not submit since the buffer opened,
        summed over CPUs: exact."""
        return self._lost_count() - self._lost_before_start

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
        self._bpf.cleanup()

    def close_in_background(self) -> None:
        """Detach in a child process, so that ending the session is instant.

        Detaching costs the kernel a grace period per tracepoint: ~1 s for our
        fourteen, paid by whichever process drops the last reference to the
        perf events. A forked child holds the same descriptors, waits until
        this process has exited, then detaches. The caller must leave with
        os._exit(), which skips bcc's atexit cleanup. The child leaves the
        terminal's session and lets go of stdio first, so no Ctrl-C reaches it
        and no reader waits on it for end-of-file.
        """
        try:
            me = os.pidfd_open(os.getpid())
        except (AttributeError, OSError):  # before Linux 5.3, or refused: detach here, slowly
            self.close()
            return
        if os.fork() == 0:
            try:
                os.setsid()
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                select.select([me], [], [])  # readable once the parent has exited
                self.close()
            finally:
                os._exit(0)
        os.close(me)
