"""The loaded programs, as the session sees them: drain the buffers, update
the maps, count losses.

The programs are compiled and attached by a helper process
(tracer/kernel/loader.py), so that bcc and LLVM never live in the session;
from then on everything goes through the descriptors it handed over: the ring
buffers' shared memory (tracer/kernel/ringbuf.py) or the per-CPU perf buffers
(tracer/kernel/perfbuf.py), and the bpf(2) system call for the maps
(tracer/kernel/bpfsys.py). It hands on decoded events (tracer/kernel/wire.py);
everything after that is pure Python shared with replay.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from proctrace.kernel import wire
from proctrace.kernel.errors import KernelError
from proctrace.kernel.image import ImageError, ProgramImage, image_key, load_image, read_cached, write_cached
from proctrace.kernel.layout import CACHE_DIR, kernel_offsets
from proctrace.kernel.loader import LoadedPrograms, Loader, LoaderError, start_loader
from proctrace.kernel.perfbuf import PerfBuffers
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
from proctrace.kernel.wire import DecodeError, decode_fold, fold_generation
from proctrace.model.events import EVENT_CLASSES, Event, SignalSummaryEvent

# The kernel buffer of each class of event (bpf/proctrace.bpf.c), in EVENT_CLASSES order.
BUFFERS = ("events", "signal_events")
# Every map the session reads or updates; a build of the program without one
# (its option off) simply does not hand it over.
SESSION_MAPS = (
    *BUFFERS,
    "lost_events",
    "folded_signals",
    "fold_generation",
    "followed",
    "match_comms",
    "selected_cgroups",
    "cgroup_verdicts",
)
COMM_LEN = 16  # struct comm_key


def maps_needed(options: ProgramOptions) -> set[str]:
    """The maps the session uses with these options: a load without one of them is refused."""
    needed = {*BUFFERS, "lost_events", "folded_signals", "fold_generation"}
    if options.follow:
        needed.add("followed")
    if options.match_comms:
        needed.add("match_comms")
    if options.cgroup_filter:
        needed |= {"selected_cgroups", "cgroup_verdicts"}
    return needed


# How long a BPF program may still be counting into a period after it ended:
# it read the period's number at most a few microseconds before.
FOLD_SETTLE_S = 0.002
# A wake-up every few dozen events at most: the session drains on a timer anyway.
PERF_WAKEUP_EVENTS = 64

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SELECTED, _NOT_SELECTED = b"\x01", b"\x00"


class ProbeError(KernelError):
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


# The helper whose presence makes the program read kernel structs through BTF
# pointers (bpf/proctrace.bpf.c, "Reading the kernel's structs").
BTF_TASK_HELPER = "KHAS_BPF_FUNC_get_current_task_btf"


@dataclass
class ProgramPlan:
    """The program a session will load: its source for this kernel and, when a
    session with the same options compiled it before, its image from the cache.
    `btf_reads`: whether the source reads through BTF pointers."""

    formats: dict[tuple[str, str], TracepointFormat]
    source: str
    key: str
    image: ProgramImage | None
    btf_reads: bool = False


def plan_program(options: ProgramOptions, cache_dir: Path | None = CACHE_DIR) -> ProgramPlan:
    formats = read_formats()
    offsets = kernel_offsets()
    plan = _plan(formats, offsets, options, cache_dir)
    if plan.image is None and plan.btf_reads:
        # Where a session had to fall back (Probe), its program is the one cached.
        fallback = _plan(formats, _probe_reads_only(offsets), options, cache_dir)
        if fallback.image is not None:
            return fallback
    return plan


def probe_reads_plan(plan: ProgramPlan, options: ProgramOptions, cache_dir: Path | None = CACHE_DIR) -> ProgramPlan:
    """`plan`'s program with every field read by bpf_probe_read_kernel, even
    where the kernel could read through BTF pointers."""
    return _plan(plan.formats, _probe_reads_only(kernel_offsets()), options, cache_dir)


def _probe_reads_only(offsets: dict[str, int]) -> dict[str, int]:
    return {**offsets, BTF_TASK_HELPER: 0}


def _plan(
    formats: dict[tuple[str, str], TracepointFormat],
    offsets: dict[str, int],
    options: ProgramOptions,
    cache_dir: Path | None,
) -> ProgramPlan:
    source = build_source(offsets, formats, options)
    key = image_key(source)
    return ProgramPlan(formats, source, key, read_cached(key, cache_dir), offsets.get(BTF_TASK_HELPER) == 1)


class Probe:
    """Loaded BPF programs and their output buffers.

    `drain()` returns the events that arrived since the last call, decoded,
    and the errors of any it could not decode. Events are consumed in batches
    on the caller's timer, never one wake-up per event.
    """

    def __init__(
        self,
        options: ProgramOptions,
        loader: Loader | None = None,
        *,
        plan: ProgramPlan | None = None,
        cache_dir: Path | None = CACHE_DIR,
    ) -> None:
        """Load the programs: from the cached image when there is one (no
        compiler, no helper), else through the loader helper (`loader`, or one
        forked now), keeping the image it makes for next time."""
        self.options = options
        self._batch: list[Event] = []
        self._errors: list[ValueError] = []
        try:
            plan = plan or plan_program(options, cache_dir)
        except BaseException:
            if loader is not None:
                loader.abandon()
            raise
        self.from_cache = False
        self.fallback_error: str | None = None  # why the program with BTF reads did not load
        loaded = None
        if plan.image is not None:
            try:
                kept, rest = load_image(plan.image, SESSION_MAPS)
                loaded = LoadedPrograms(kept, rest)
                missing = maps_needed(options) - set(kept)
                if missing:
                    loaded.close()
                    raise ImageError(f"the image has no map {', '.join(sorted(missing))}")
                self.from_cache = True
            except ImageError:
                loaded = None  # this kernel refuses it now, or it is not whole: compile, and cache the new one
        if loaded is not None:
            if loader is not None:
                loader.abandon()
        else:
            loader = loader or start_loader()
            try:
                loaded = self._compile_and_load(plan, loader, cache_dir)
            except LoaderError as exc:
                if not plan.btf_reads:
                    raise ProbeError(str(exc)) from None
                # Reads through BTF pointers are checked by the verifier against
                # the kernel's BTF, and a kernel's verifier may refuse one that
                # 6.18's takes: the same program with probe reads only, once.
                self.fallback_error = str(exc)
                plan = probe_reads_plan(plan, options, cache_dir)
                try:
                    loaded = self._compile_and_load(plan, start_loader(), cache_dir)
                except LoaderError:
                    raise ProbeError(str(exc)) from None
        self.btf_reads = plan.btf_reads
        self._loaded = loaded
        try:
            self._open_buffers()
        except (OSError, ValueError) as exc:
            self._loaded.close()
            raise ProbeError(f"the BPF output buffers could not be mapped: {exc}") from None
        maps = self._loaded.map
        self._lost = maps("lost_events")
        self._folded = maps("folded_signals")
        self._generation_table = maps("fold_generation")
        self._generation = 0
        # The programs were attached before the buffers were mapped: submits in
        # that gap may have failed. They precede the session, so they are not
        # the session's losses.
        self._lost_before_start = self._lost_counts()

    @staticmethod
    def _compile_and_load(plan: ProgramPlan, loader: Loader, cache_dir: Path | None) -> LoadedPrograms:
        """`plan`'s program through the helper, its image kept for next time."""
        loaded = loader.load(plan.source, shared_attachments(plan.formats), SESSION_MAPS, plan.key)
        if loaded.image is not None:
            with contextlib.suppress(ImageError):
                write_cached(ProgramImage.from_json(loaded.image), cache_dir)
        return loaded

    def _open_buffers(self) -> None:
        options, maps = self.options, self._loaded.map
        pages = (options.buffer_pages, options.signal_buffer_pages)
        self._rings: list[RingReader] = []
        self._perf: list[PerfBuffers] = []
        # Each buffer's drain with what it decodes by: the ring a walk over its
        # records, the perf buffer a decoder per sample (wire.py's, compiled
        # where built; looked up now, so a test may choose the decoder).
        drains: list[tuple[Callable[..., int], Callable[..., object]]]
        if options.ring_buffer:
            for name, page_cnt in zip(BUFFERS, pages, strict=True):
                self._rings.append(RingReader(maps(name).fd, page_cnt * mmap.PAGESIZE))
            drains = [(ring.drain, wire.walk_ring) for ring in self._rings]
        else:
            for name, page_cnt in zip(BUFFERS, pages, strict=True):
                self._perf.append(PerfBuffers(maps(name).fd, page_cnt, PERF_WAKEUP_EVENTS))
            drains = [(perf.drain, wire.decode_at) for perf in self._perf]

        def drain_buffers() -> None:
            batch, errors = self._batch, self._errors
            for drain, decoder in drains:
                drain(decoder, batch, errors)

        self._consume = drain_buffers

    def follow(self, pid: int) -> None:
        """Trace task `pid` (follow mode only), and what it forks with follow_children."""
        self._loaded.map("followed").update(_U32.pack(pid), _SELECTED)

    def match_comm(self, comm: bytes) -> None:
        """Follow every process that execs into `comm` (at most 15 bytes)."""
        key = comm[: COMM_LEN - 1].ljust(COMM_LEN, b"\0")
        self._loaded.map("match_comms").update(key, _SELECTED)

    def select_cgroups(self, ids: list[int]) -> None:
        """With a cgroup filter: trace the tasks in these cgroups and their
        descendants. Verdicts the programs worked out before are dropped, since
        they may have been made before this selection."""
        selected = self._loaded.map("selected_cgroups")
        for cgroup_id in ids:
            selected.update(_U64.pack(cgroup_id), _SELECTED)
        self._loaded.map("cgroup_verdicts").clear()

    def decide_cgroup(self, cgroup_id: int, selected: bool) -> None:
        """With a cgroup filter: whether a cgroup made during the session is
        selected, once user space knows its path (until then the programs send
        what runs in it, and the user-space filter decides)."""
        key = _U64.pack(cgroup_id)
        if selected:
            self._loaded.map("selected_cgroups").update(key, _SELECTED)
        self._loaded.map("cgroup_verdicts").update(key, _SELECTED if selected else _NOT_SELECTED)

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
        return [
            sum(_U64.unpack(v)[0] for v in lost.per_cpu_values(_U32.pack(index))) for index in range(len(EVENT_CLASSES))
        ]

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
        self._generation_table.update(_U32.pack(0), _U32.pack(self._generation))
        if final:
            time.sleep(FOLD_SETTLE_S)
        older_than = self._generation if final else ended
        now = time.monotonic_ns()
        out = []
        folded = self._folded
        for raw_key, value in folded.items():
            if fold_generation(raw_key) >= older_than:
                continue
            try:
                out.append(decode_fold(raw_key, value, now))
            except DecodeError as exc:
                self._errors.append(exc)
            folded.delete(raw_key)
        out.sort(key=lambda ev: ev.first_ns)
        return out

    def close(self) -> None:
        for reader in (*self._rings, *self._perf):
            reader.close()
        self._rings, self._perf = [], []
        self._loaded.close()

    def close_in_background(self) -> None:
        """Detach in a child process, so that ending the session is instant.

        Detaching costs the kernel a grace period per tracepoint: ~1 s for our
        tracepoints, paid by whichever process drops the last reference to
        the perf events. A forked child holds the same descriptors, waits
        until this process has exited, then detaches. The caller must leave
        with os._exit(), as the child does. The child leaves the
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
