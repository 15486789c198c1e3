"""Attaching a live session to the kernel, in one place with one cleanup path:
check the prerequisites, plan the program (and fork the helper that compiles
it, when it is not in the cache), hold the command, load the probes, give the
kernel its share of the filters, and take the /proc snapshot."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from proctrace.kernel.loader import start_loader
from proctrace.kernel.prereqs import Host, Status, check_ring_buffer, ensure_live_ready
from proctrace.kernel.probe import Probe, plan_program
from proctrace.kernel.program import ARGV_MAX_LIMIT, ENV_MAX_DEFAULT, ProgramOptions
from proctrace.model.cgroups import CgroupTable
from proctrace.model.filters import EventFilter, FilterSpec, check_cgroup_paths, kernel_cgroup_selection
from proctrace.model.procsnap import ProcInfo, snapshot
from proctrace.model.redact import Redactor
from proctrace.session.command import HeldCommand, sudo_identity
from proctrace.session.options import SessionOptions, TransportOptions
from proctrace.session.pipeline import session_redactor


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP once catch_signals() has run; the live
    loop ends cleanly at its next turn."""

    def __init__(self) -> None:
        self.signo: int | None = None
        self.quit = False  # q in the live view

    def request(self) -> None:
        """End the session as a signal would, from the session's own side."""
        self.quit = True

    def catch_signals(self) -> None:
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, self._set)

    def _set(self, signo: int, _frame: object) -> None:
        self.signo = signo

    def __bool__(self) -> bool:
        return self.signo is not None or self.quit


# With --env an exec event carries up to ENV_MAX_DEFAULT bytes more: about ten
# times a plain one. The lifecycle buffer's default grows with it, so that it
# holds as many seconds of a storm.
ENV_BUFFER_FACTOR = 4


def buffer_pages(size: int | None, ring: bool, large_events: bool = False) -> int:
    """Buffer size in pages; a ring buffer needs a power of two."""
    page = os.sysconf("SC_PAGE_SIZE")
    if size is None:
        size = (4 << 20) if ring else (1 << 20)
        if large_events:
            size *= ENV_BUFFER_FACTOR
    pages = max(1, size // page)
    return 1 << (pages - 1).bit_length()


def kernel_options(spec: FilterSpec, command: Sequence[str] | None) -> dict[str, bool]:
    """What the kernel can filter itself: the traced command's tree, named pids,
    followed subtrees and literal names. The rest is left to user space."""
    if command is not None:
        return {"follow": True, "follow_children": True, "match_comms": False}
    if spec.selects and spec.literal_comms:
        return {"follow": True, "follow_children": spec.follow, "match_comms": bool(spec.comms)}
    return {"follow": False, "follow_children": False, "match_comms": False}


def env_max(transport: TransportOptions) -> int:
    """The environment bytes an exec carries with --env: argv and environment
    share one per-CPU buffer of ARGV_MAX_LIMIT bytes, so a larger --argv-max
    leaves less."""
    return min(ENV_MAX_DEFAULT, ARGV_MAX_LIMIT - transport.argv_max)


@dataclass
class LiveKernel:
    """The kernel side of a live session once attached: the probes, whether they
    write to the ring buffer, the stop flag, the filter seeded with the processes
    found running, and the command, held until release_command()."""

    probe: Probe
    ring: bool
    stop: StopFlag
    held: HeldCommand | None
    event_filter: EventFilter
    snapshot: list[ProcInfo]  # redacted
    redactor: Redactor
    # The unified hierarchy's cgroups, scanned once the probes were attached.
    cgroups: CgroupTable = field(default_factory=CgroupTable)

    def release_command(self) -> None:
        """Follow the held command in the kernel, then let it exec, so its first exec is traced."""
        if self.held is not None:
            self.probe.follow(self.held.pid)
            self.held.release()


@contextmanager
def attach(options: SessionOptions) -> Iterator[LiveKernel]:
    """The kernel side of a live session, attached for the `with` block.

    Leaving the block normally detaches the probes in a child process (the
    caller must then end with os._exit()); leaving it by an exception detaches
    them here and now, and a command still held exits without running.
    """
    ensure_live_ready()
    transport, spec, command = options.transport, options.filters, options.command
    redactor = session_redactor(options.redaction)
    ring = check_ring_buffer(Host()).status is Status.OK if transport.buffer is None else transport.buffer == "ring"
    signal_size = transport.buffer_size if transport.signal_buffer_size is None else transport.signal_buffer_size
    program = ProgramOptions(
        ring_buffer=ring,
        buffer_pages=buffer_pages(transport.buffer_size, ring, large_events=transport.env),
        signal_buffer_pages=buffer_pages(signal_size, ring),
        argv_max=transport.argv_max,
        signal_rate=transport.signal_rate,
        all_signals=transport.all_signals,
        env=transport.env,
        env_max=env_max(transport),
        cgroup_filter=spec.by_cgroup,
        **kernel_options(spec, command),
    )
    # The source for this kernel, and the image of its compile if a session
    # made one before: then nothing is compiled.
    plan = plan_program(program)
    # Otherwise the helper that compiles, forked before the session opens
    # anything it should not inherit; it imports bcc meanwhile.
    loader = None if plan.image is not None else start_loader()
    try:
        # A --cgroup that names nothing fails now, not after seconds of compiling.
        cgroups = CgroupTable.discover()
        check_cgroup_paths(spec, cgroups)
        held = None
        if command is not None:
            identity = None if options.as_root else sudo_identity(os.environ)
            held = HeldCommand(list(command), identity)
    except BaseException:
        if loader is not None:
            loader.abandon()
        raise
    with ExitStack() as undo:
        if loader is not None:
            undo.callback(loader.abandon)  # does nothing once it has loaded or failed
        if held is not None:
            undo.callback(held.abandon)  # does nothing once the command is released
        # Before the probes load (seconds of compiling): a Ctrl-C meanwhile ends
        # the session cleanly once it starts, not with a traceback.
        stop = StopFlag()
        stop.catch_signals()
        probe = Probe(program, loader, plan=plan)
        undo.callback(probe.close)
        if probe.fallback_error is not None:
            print(
                "proctrace: note: this kernel refused the program's reads through BTF pointers; "
                "every field is read with bpf_probe_read_kernel instead (the same data, more BPF time per event)",
                file=sys.stderr,
            )
        if program.match_comms:
            for name in spec.kernel_names():
                probe.match_comm(name)
        # Taken once the probes are attached, so no process falls between the two.
        # Neither the tracer nor the command it holds is part of what it found running.
        ours = {os.getpid(), held.pid} if held else {os.getpid()}
        # Redacted before the filter or any output reads them, as events are.
        procs = redactor.snapshot([p for p in snapshot() if p.pid not in ours])
        # Rescanned for the cgroups made while the probes loaded; later ones come as events.
        if cgroups.live:
            cgroups.scan()
        check_cgroup_paths(spec, cgroups)
        if program.cgroup_filter:
            # The programs send what runs in a cgroup made from here on until
            # user space decides on it (tracer/session/cgroups.py): nothing
            # made between the scan and this is missed.
            probe.select_cgroups(sorted(kernel_cgroup_selection(spec, cgroups)))
        event_filter = EventFilter(spec, cgroups)
        selected = event_filter.seed(procs)
        if program.follow:
            for pid in [*spec.pids, *selected]:
                probe.follow(pid)
        yield LiveKernel(probe, ring, stop, held, event_filter, procs, redactor, cgroups)
        undo.pop_all()
    probe.close_in_background()
