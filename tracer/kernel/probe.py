"""The one module that touches bcc: compile, attach, drain the buffer, count losses.

It hands on decoded events (tracer/kernel/wire.py); everything after that is pure
Python shared with replay.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import time
from types import ModuleType

from proctrace.kernel.layout import kernel_offsets
from proctrace.kernel.program import (
    CRED_SYSCALLS,
    EXEC_SYSCALLS,
    OOM_EVENTS,
    WAIT_SYSCALLS,
    ProgramOptions,
    build_source,
    shared_attachments,
    tracepoints_used,
)
from proctrace.kernel.ringbuf import RingReader
from proctrace.kernel.tracepoints import FormatError, TracepointFormat, read_format
from proctrace.kernel.wire import DecodeError, decode, decode_at, decode_fold, fold_generation
from proctrace.model.events import EVENT_CLASSES, Event, SignalSummaryEvent

# The kernel buffer of each class of event (bpf/proctrace.bpf.c), in EVENT_CLASSES order.
BUFFERS = ("events", "signal_events")

# How long a BPF program may still be counting into a period after it ended:
# it read the period's number at most a few microseconds before.
FOLD_SETTLE_S = 0.002


class ProbeError(Exception):
    """The BPF programs could not be compiled, loaded or attached."""


def read_formats() -> dict[tuple[str, str], TracepointFormat]:
    """Format files of every tracepoint we use that this kernel has."""
    formats = {}
    optional = set(EXEC_SYSCALLS) | set(WAIT_SYSCALLS) | set(CRED_SYSCALLS) | set(OOM_EVENTS)
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
        self._rings: list[RingReader] = []
        pages = (options.buffer_pages, options.signal_buffer_pages)
        if options.ring_buffer:
            self._open_ring_buffers([p * mmap.PAGESIZE for p in pages])
        else:
            on_record = self._on_record

            def on_perf(_cpu: int, data: int, size: int) -> None:
                on_record(data, size)

            # A wake-up every few dozen events at most: we drain on a timer anyway.
            # Losses are counted exactly by the BPF programs (lost()); bcc's own
            # callback would print an undercount of its own on stderr.
            for name, page_cnt in zip(BUFFERS, pages, strict=True):
                self._bpf[name].open_perf_buffer(
                    on_perf, page_cnt=page_cnt, lost_cb=lambda _count: None, wakeup_events=64
                )
            self._consume = self._bpf.perf_buffer_consume  # polls every perf buffer opened
        self._lost = self._bpf["lost_events"]
        self._folded = self._bpf["folded_signals"]
        self._generation_table = self._bpf["fold_generation"]
        self._generation = 0
        # bcc attaches the programs as it loads them, before the perf buffers
        # exist: submits in that gap fail. They precede the session, so they
        # are not the session's losses.
        self._lost_before_start = self._lost_counts()

    def _on_record(self, data: int, size: int) -> None:
        """bcc's callbacks: copy the record out of the buffer and decode it
        (an exception must not escape into bcc's C caller)."""
        try:
            self._batch.append(decode(ctypes.string_at(data, size)))
        except DecodeError as exc:
            self._errors.append(exc)

    def _open_ring_buffers(self, sizes: list[int]) -> None:
        try:
            for name, size in zip(BUFFERS, sizes, strict=True):
                self._rings.append(RingReader(self._bpf[name].map_fd, size))
        except (OSError, ValueError):
            for ring in self._rings:
                ring.close()
            self._rings = []
            on_record = self._on_record

            def on_ring(_ctx: object, data: int, size: int) -> int:
                on_record(data, size)
                return 0  # bcc's ring buffer callback must return an int

            for name in BUFFERS:
                self._bpf[name].open_ring_buffer(on_ring)
            self._consume = self._bpf.ring_buffer_consume  # one manager for every ring opened
            return
        rings = self._rings

        def drain_rings() -> None:
            batch, errors = self._batch, self._errors
            for ring in rings:
                ring.drain(decode_at, batch, errors)

        self._consume = drain_rings

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

    def select_cgroups(self, ids: list[int]) -> None:
        """With a cgroup filter: trace the tasks in these cgroups and their
        descendants. Verdicts the programs worked out before are dropped, since
        they may have been made before this selection."""
        selected = self._bpf["selected_cgroups"]
        for cgroup_id in ids:
            selected[selected.Key(cgroup_id)] = selected.Leaf(1)
        self._bpf["cgroup_verdicts"].clear()

    def decide_cgroup(self, cgroup_id: int, selected: bool) -> None:
        """With a cgroup filter: whether a cgroup made during the session is
        selected, once user space knows its path (until then the programs send
        what runs in it, and the user-space filter decides)."""
        if selected:
            table = self._bpf["selected_cgroups"]
            table[table.Key(cgroup_id)] = table.Leaf(1)
        verdicts = self._bpf["cgroup_verdicts"]
        verdicts[verdicts.Key(cgroup_id)] = verdicts.Leaf(int(selected))

    @property
    def buffer_bytes(self) -> int:
        """The ring buffer's size, or the perf buffer's per CPU."""
        return self.options.buffer_pages * mmap.PAGESIZE

    def drain(self) -> tuple[list[Event], list[ValueError]]:
        """The events decoded since the last call, from both buffers, and the
        errors of records that were not events."""
        self._consume()
        out, errors = self._batch, self._errors
        self._batch, self._errors = [], []  # handed over whole, not copied
        return out, errors

    def _lost_counts(self) -> list[int]:
        lost = self._lost
        return [sum(int(v) for v in lost[lost.Key(index)]) for index in range(len(EVENT_CLASSES))]

    def lost(self) -> dict[str, int]:
        """Events of each class the BPF programs could not submit since the
        buffers opened, summed over CPUs: exact."""
        now = self._lost_counts()
        return {cls: n - before for cls, n, before in zip(EVENT_CLASSES, now, self._lost_before_start, strict=True)}

    def folded(self, final: bool = False) -> list[SignalSummaryEvent]:
        """The signals the kernel counted instead of sending, per sender, target,
        signal and reason, for the periods that have ended: one event each.

        Each call starts a new counting period. Entries of the periods before
        the one that just ended are read and deleted: no program writes to
        them any more, so nothing counted is lost between reading and deleting.
        `final` (the end of the session) waits for the period just ended to
        settle and takes it too."""
        ended = self._generation
        self._generation += 1
        table = self._generation_table
        table[table.Key(0)] = table.Leaf(self._generation)
        if final:
            time.sleep(FOLD_SETTLE_S)
        older_than = self._generation if final else ended
        now = time.monotonic_ns()
        out = []
        folded = self._folded
        for key, value in list(folded.items()):
            raw_key = bytes(key)
            if fold_generation(raw_key) >= older_than:
                continue
            try:
                out.append(decode_fold(raw_key, bytes(value), now))
            except DecodeError as exc:
                self._errors.append(exc)
            del folded[key]
        out.sort(key=lambda ev: ev.first_ns)
        return out

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
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
