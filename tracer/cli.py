"""The command line: parse options, start the live session, map failures to messages.

The options are a contract that users and scripts rely on: extend, don't break.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Any

from proctrace import __version__
from proctrace.formats.text import safe
from proctrace.kernel.btf import BtfError
from proctrace.kernel.program import ARGV_MAX_DEFAULT, ARGV_MAX_LIMIT, ProgramOptions
from proctrace.kernel.tracepoints import FormatError
from proctrace.model.clock import Clock
from proctrace.model.events import EVENT_KINDS
from proctrace.model.filters import EventFilter, FilterError, FilterSpec, parse_kinds
from proctrace.session.command import CommandError, HeldCommand, sudo_identity
from proctrace.session.sinks import reader_gone

EXIT_USAGE = 2
EXIT_FAILURE = 1

EPILOG = """\
examples:
  sudo proctrace                          stream every fork, exec, exit, signal and reap
  sudo proctrace --json | jq .            one JSON object per event
  sudo proctrace -o trace.txt -- make -j2 trace a command and its descendants
  sudo proctrace -c make -f               make, and everything it spawns
  sudo proctrace -e exec -u alice         every exec by alice
  sudo proctrace --buffer perf            use the perf buffer instead of the ring buffer
  proctrace --doctor                      check that live tracing will work here
"""


BUFFER_SIZE_MAX = 1 << 30


def buffer_size_arg(text: str) -> int:
    value = parse_size(text)
    if value > BUFFER_SIZE_MAX:
        raise argparse.ArgumentTypeError(f"at most {BUFFER_SIZE_MAX >> 20}M")
    return value


def parse_size(text: str) -> int:
    """'4M', '256K', '65536' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if t and t[-1] in units:
        mult, t = units[t[-1]], t[:-1]
    try:
        value = int(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 4M or 256K)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def argv_limit(text: str) -> int:
    value = parse_size(text)
    if not 64 <= value <= ARGV_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 64 and {ARGV_MAX_LIMIT} bytes")
    return value


def pid_arg(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if pid <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return pid


def uid_arg(text: str) -> int:
    """A uid, or a user name looked up in the passwd database."""
    if text.isdigit():
        return int(text)
    import pwd

    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text!r}") from None


def kinds_arg(text: str) -> frozenset[str]:
    try:
        return parse_kinds(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="proctrace",
        usage="proctrace [OPTIONS] [-- COMMAND [ARG...]]",
        description="Trace the Linux process lifecycle live: every fork, exec, exit, signal and reap.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="one JSON object per event per line (schema in README)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the event stream to FILE instead of stdout")
    p.add_argument("-w", "--write", metavar="FILE", help="record the session to FILE (.gz compresses)")
    p.add_argument("-r", "--read", metavar="FILE", help="read a recorded session instead of tracing (no root needed)")
    p.add_argument("-q", "--quiet", action="store_true", help="with -w: record without printing the stream")
    p.add_argument("--force", action="store_true", help="with -w or --export-trace: overwrite FILE if it exists")
    p.add_argument(
        "--buffer",
        choices=("ring", "perf"),
        help="kernel-to-user transport (default: ring where the kernel has it, else perf)",
    )
    p.add_argument(
        "--buffer-size",
        type=buffer_size_arg,
        metavar="SIZE",
        help="kernel buffer size: ring buffer total (default 4M), perf buffer per CPU (default 1M)",
    )
    p.add_argument(
        "--argv-max",
        type=argv_limit,
        default=ARGV_MAX_DEFAULT,
        metavar="BYTES",
        help=f"argument bytes read per exec; longer lists are cut and flagged (default {ARGV_MAX_DEFAULT})",
    )
    p.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour the stream (default: auto)"
    )
    p.add_argument("--as-root", action="store_true", help="with -- COMMAND under sudo: run COMMAND as root")
    v = p.add_argument_group("views at the end of the session (instead of the event stream)")
    v.add_argument(
        "--timeline",
        nargs="*",
        type=pid_arg,
        metavar="PID",
        help="each process's life in order (only PIDs, if given); with --json one object per process",
    )
    v.add_argument("--tree", action="store_true", help="the process tree with command lines, lifetimes, outcomes")
    v.add_argument("--summary", action="store_true", help="counts by command, failures, signals, extremes, losses")
    v.add_argument(
        "--export-trace",
        metavar="OUT.json",
        help="also write the session as Chrome Trace Event JSON, for Perfetto UI or chrome://tracing",
    )
    f = p.add_argument_group("filters (the same live and on a recording)")
    f.add_argument(
        "-c",
        "--comm",
        action="append",
        default=[],
        metavar="PATTERN",
        help="processes whose command name, or the basename of the file they exec'd, matches "
        "PATTERN (a shell glob; repeatable)",
    )
    f.add_argument("--regex", action="store_true", help="-c and -C patterns are regular expressions")
    f.add_argument("-f", "--follow", action="store_true", help="also every descendant of a selected process")
    f.add_argument("-p", "--pid", action="append", default=[], type=pid_arg, metavar="PID", help="process PID")
    f.add_argument("-u", "--uid", action="append", default=[], type=uid_arg, metavar="UID", help="events of UID")
    f.add_argument(
        "-e",
        "--events",
        type=kinds_arg,
        metavar="KINDS",
        help=f"only these kinds, comma-separated: {','.join(EVENT_KINDS)}",
    )
    f.add_argument("-C", "--exclude-comm", action="append", default=[], metavar="PATTERN", help="hide these names")
    f.add_argument("--no-threads", action="store_true", help="hide thread creation and thread exit")
    p.add_argument("--doctor", action="store_true", help="check each prerequisite of live tracing and exit")
    p.add_argument("--version", action="version", version=f"proctrace {__version__}")
    return p


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def buffer_pages(size: int | None, ring: bool) -> int:
    """Buffer size in pages; a ring buffer needs a power of two."""
    page = os.sysconf("SC_PAGE_SIZE")
    if size is None:
        size = (4 << 20) if ring else (1 << 20)
    pages = max(1, size // page)
    return 1 << (pages - 1).bit_length()


def filter_spec(args: argparse.Namespace) -> FilterSpec:
    spec = FilterSpec(
        comms=tuple(args.comm),
        regex=args.regex,
        follow=args.follow,
        pids=tuple(args.pid),
        uids=tuple(args.uid),
        kinds=args.events or frozenset(EVENT_KINDS),
        exclude=tuple(args.exclude_comm),
        no_threads=args.no_threads,
    )
    EventFilter(spec)  # compiles the patterns: a bad one fails before anything starts
    return spec


def kernel_options(spec: FilterSpec, command: list[str] | None) -> dict[str, bool]:
    """What the kernel can filter itself: the traced command's tree, named pids,
    followed subtrees and literal names. The rest is left to user space."""
    if command is not None:
        return {"follow": True, "follow_children": True, "match_comms": False}
    if spec.selects and spec.literal_comms:
        return {"follow": True, "follow_children": spec.follow, "match_comms": bool(spec.comms)}
    return {"follow": False, "follow_children": False, "match_comms": False}


def options_record(args: argparse.Namespace, spec: FilterSpec, command_pid: int | None) -> dict[str, Any]:
    """The options in effect, as the recording's header keeps them."""
    return {
        "filters": spec.as_dict(),
        "argv_max": args.argv_max,
        "buffer_size": args.buffer_size,
        "command_pid": command_pid,
    }


def run(args: argparse.Namespace, command: list[str] | None) -> int:
    # Imported here so that --help, --version and argument errors never pay for them.
    from proctrace.formats.recording import make_header
    from proctrace.kernel.bcc import load_bcc
    from proctrace.kernel.prereqs import Host, Status, check_ring_buffer, ensure_live_ready
    from proctrace.kernel.probe import Probe
    from proctrace.model.procsnap import snapshot
    from proctrace.session.live import StopFlag, run_live
    from proctrace.session.outputs import Session, refuse_existing

    spec = filter_spec(args)
    for path in (args.write, args.export_trace):
        if path:
            refuse_existing(path, args.force)
    ensure_live_ready()
    bcc = load_bcc()
    ring = check_ring_buffer(Host()).status is Status.OK if args.buffer is None else args.buffer == "ring"
    options = ProgramOptions(
        ring_buffer=ring,
        buffer_pages=buffer_pages(args.buffer_size, ring),
        argv_max=args.argv_max,
        **kernel_options(spec, command),
    )
    held = None
    if command is not None:
        identity = None if args.as_root else sudo_identity(os.environ)
        held = HeldCommand(command, identity)
    stop = StopFlag()
    try:
        probe = Probe(bcc, options)
    except BaseException:
        if held:
            held.abandon()
        raise
    try:
        event_filter = EventFilter(spec)
        if options.match_comms:
            for name in spec.kernel_names():
                probe.match_comm(name)
        # Taken once the probes are attached, so no process falls between the two.
        # Neither the tracer nor the command it holds is part of what it found running.
        ours = {os.getpid(), held.pid} if held else {os.getpid()}
        procs = [p for p in snapshot() if p.pid not in ours]
        if options.follow:
            for pid in [*spec.pids, *event_filter.seed(procs)]:
                probe.follow(pid)
        else:
            event_filter.seed(procs)
        clock = Clock()
        header = None
        if args.write:
            record = options_record(args, spec, held.pid if held else None)
            header = make_header(clock, "ring" if ring else "perf", record, procs)
        session = Session(args, event_filter, clock, procs, header)
    except BaseException:
        if held:
            held.abandon()
        probe.close()
        raise
    stream = session.stream
    what = f"{safe(command[0])} and its descendants" if command else "every process"
    transport = "ring buffer" if ring else "perf buffer"
    print(f"proctrace: tracing {what} ({transport}); Ctrl-C to stop", file=sys.stderr, flush=True)
    reason = "ended"
    try:
        if held is not None:
            probe.follow(held.pid)
            held.release()
        totals = run_live(
            probe,
            session.pipeline,
            stop,
            # Ctrl-C reaches the command through the terminal; we trace until it exits.
            done=(lambda: held.poll() is not None) if held else (lambda: False),
            output_closed=(lambda: reader_gone(stream)) if stream else (lambda: False),
        )
        if stop.signo is not None:
            reason = f"stopped by {signal.Signals(stop.signo).name}"
        elif held is not None:
            reason = "the command ended"
    except BaseException:
        with contextlib.suppress(Exception):
            session.close("failed")
        probe.close()
        raise
    try:
        session.close(reason)
        session.finish([held.pid] if held else None)
    finally:
        probe.close_in_background()
        global _leave_without_cleanup
        _leave_without_cleanup = True
    skipped = f", {totals.undecodable} undecodable" if totals.undecodable else ""
    print(f"proctrace: {totals.events} events, {totals.lost} lost{skipped}", file=sys.stderr)
    if held is not None and held.status is not None:
        status = held.status
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    return 0


# Set once a child process has taken over detaching the probes: this process
# must then end with os._exit(), skipping bcc's own slow atexit cleanup.
_leave_without_cleanup = False


def replay(args: argparse.Namespace) -> int:
    """Read a recording back: no root and no bcc, and the same filters and views as live."""
    from proctrace.formats.recording import LostRecord, open_recording
    from proctrace.session.outputs import Session, refuse_existing

    spec = filter_spec(args)
    for path in (args.write, args.export_trace):
        if path:
            refuse_existing(path, args.force)
    recording = open_recording(args.read)
    event_filter = EventFilter(spec)
    event_filter.seed(recording.snapshot)
    header = None
    if args.write:
        header = dict(recording.header, options={**recording.header.get("options", {}), "filters": spec.as_dict()})
    session = Session(args, event_filter, recording.clock, recording.snapshot, header)
    stream = session.stream
    pipeline = session.pipeline
    try:
        for item in recording.records():
            if isinstance(item, LostRecord):
                pipeline.lost(item.ts_ns, item.count, item.total)
            else:
                pipeline.write(item)
                if stream is not None and reader_gone(stream):
                    raise BrokenPipeError("the reader of the output went away")
    finally:
        session.close("replayed")
    command_pid = recording.header.get("options", {}).get("command_pid")
    session.finish([command_pid] if isinstance(command_pid, int) else None)
    for warning in recording.warnings:
        print(f"proctrace: warning: {safe(warning)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from proctrace.kernel.bcc import BccUnavailable
    from proctrace.kernel.prereqs import PrereqError
    from proctrace.kernel.probe import ProbeError

    raw = sys.argv[1:] if argv is None else argv
    own, command = split_command(raw)
    parser = build_parser()
    args, extra = parser.parse_known_args(own)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (a command to run goes after --)")
    if command is not None and not command:
        parser.error("no command after --")
    if args.quiet and not args.write:
        parser.error("-q records without printing: it needs -w FILE")
    if args.read and command is not None:
        parser.error("-r reads a recording; it cannot also run a command")
    if args.doctor:
        from proctrace.doctor import run_doctor

        return run_doctor(sys.stdout)
    from proctrace.formats.recording import RecordingError

    try:
        code = replay(args) if args.read else run(args, command)
        if _leave_without_cleanup:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except CommandError as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return 127
    except (FilterError, RecordingError) as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (PrereqError, BccUnavailable, ProbeError, BtfError, FormatError) as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except ModuleNotFoundError as exc:
        # rich, in an interpreter that proctrace's set-up did not prepare.
        print(
            f"proctrace: the Python module {exc.name!r} is missing: run ./scripts/proctrace once to set up, "
            f"or install it (pip install {exc.name})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`proctrace | head -1`): stop quietly, as cat would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
