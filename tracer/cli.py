"""The command line: parse the arguments into SessionOptions, run the session
(live, or replaying a recording) or the doctor, and map failures to messages and
exit codes.

The options are a contract that users and scripts rely on: extend, don't break.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from proctrace import __version__
from proctrace.formats.text import safe
from proctrace.kernel.errors import KernelError
from proctrace.kernel.program import ARGV_MAX_DEFAULT, ARGV_MAX_LIMIT, ENV_MAX_DEFAULT, SIGNAL_RATE_DEFAULT
from proctrace.model.cgroups import container_prefix, unit_name
from proctrace.model.events import EVENT_KINDS
from proctrace.model.filters import EventFilter, FilterError, FilterSpec, parse_kinds
from proctrace.model.redact import RedactError
from proctrace.session.command import CommandError
from proctrace.session.options import (
    ExportOptions,
    OutputOptions,
    RedactionOptions,
    RotationOptions,
    SessionOptions,
    TransportOptions,
)

if TYPE_CHECKING:
    from proctrace.session.loop import SessionResult

EXIT_USAGE = 2
EXIT_FAILURE = 1

EPILOG = """\
examples:
  sudo proctrace                          stream every fork, exec, exit, signal and reap
  sudo proctrace --json | jq .            one JSON object per event
  sudo proctrace -o trace.txt -- make -j2 trace a command and its descendants
  sudo proctrace -c make -f               make, and everything it spawns
  sudo proctrace -e exec -u alice         every exec by alice
  sudo proctrace --unit nginx             what runs in nginx.service (and cgroups below it)
  sudo proctrace --container 3f2a9c       what runs in the container whose id starts 3f2a9c
  sudo proctrace --top                    a live view of the process tree (q quits)
  proctrace -r s.rec --top --speed 10     replay a recording in the live view, ten times as fast
  sudo proctrace --buffer perf            use the perf buffer instead of the ring buffer
  sudo proctrace --env -- ./deploy.sh     with each exec's environment, secrets redacted
  sudo proctrace --env-allow LANG -- ./x  only the variable LANG of each exec
  sudo proctrace -q -w /var/log/proctrace/%Y%m%d-%H%M%S.rec.gz --rotate-time 1h --keep 48
                                          always on: a file an hour, the last two days kept
  proctrace -r /var/log/proctrace --tree  read a directory of rotated files as one session
  sudo proctrace -w s.rec --metrics 9090  record, with Prometheus metrics at 127.0.0.1:9090
  sudo proctrace --otlp http://otel:4318  each event to an OpenTelemetry Collector as a log record
  proctrace -r s.rec --report s.html      the session as one HTML page: tree, timeline, each life
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


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_arg(text: str) -> float:
    """'30s', '10m', '1h', '2d' or seconds ('90', '0.5') -> seconds; at least one."""
    t = text.strip().lower()
    mult = 1
    if t and t[-1] in _DURATION_UNITS:
        mult, t = _DURATION_UNITS[t[-1]], t[:-1]
    try:
        seconds = float(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 10m, 1h or seconds)") from None
    if not 1 <= seconds <= 366 * 86400:
        raise argparse.ArgumentTypeError(f"must be between 1 second and a year: {text!r}")
    return seconds


def keep_arg(text: str) -> int:
    try:
        keep = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of files: {text!r}") from None
    if keep < 1:
        raise argparse.ArgumentTypeError(f"must keep at least one file: {text!r}")
    return keep


def argv_limit(text: str) -> int:
    value = parse_size(text)
    if not 64 <= value <= ARGV_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 64 and {ARGV_MAX_LIMIT} bytes")
    return value


def signal_rate_arg(text: str) -> int:
    try:
        rate = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of signals a second: {text!r}") from None
    if not 0 <= rate < 1 << 32:
        raise argparse.ArgumentTypeError(f"must be between 0 (no limit) and {(1 << 32) - 1}: {text!r}")
    return rate


def pid_arg(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if pid <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return pid


def speed_arg(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r} (try 1, 10 or 0.5)") from None
    if not 0 < speed <= 1e6:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1000000: {text!r}")
    return speed


def uid_arg(text: str) -> int:
    """A uid, or a user name looked up in the passwd database."""
    if text.isdigit():
        return int(text)
    import pwd

    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text!r}") from None


def cgroup_arg(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"not a cgroup path: {text!r} (give it as /proc/PID/cgroup does, /system.slice/x.service, "
            "or as its directory under the cgroup mount)"
        )
    return text


def unit_arg(text: str) -> str:
    if not text or "/" in text:
        raise argparse.ArgumentTypeError(f"not a systemd unit name: {text!r}")
    return unit_name(text.encode()).decode()


def container_arg(text: str) -> str:
    try:
        return container_prefix(text).decode()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def kinds_arg(text: str) -> frozenset[str]:
    try:
        return parse_kinds(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Environment bytes below which --env is not worth reading (the smallest --argv-max, likewise).
ENV_MIN = 64


def env_name_arg(text: str) -> str:
    if not text or "=" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"not a variable name: {text!r} (give NAME, not NAME=VALUE)")
    return text


def _export_arg(text: str, parse: Callable[[str], object]) -> str:
    """`text` if `parse` takes it; the export itself parses it again when it starts."""
    from proctrace.export.errors import ExportError

    try:
        parse(text)
    except ExportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def metrics_arg(text: str) -> str:
    from proctrace.export.metrics import parse_listen

    return _export_arg(text, parse_listen)


def otlp_arg(text: str) -> str:
    from proctrace.export.otlp import parse_endpoint

    return _export_arg(text, parse_endpoint)


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
    p.add_argument(
        "-r",
        "--read",
        action="append",
        metavar="FILE",
        help="read a recorded session instead of tracing (no root needed); repeat it, or give a directory, "
        "to read several recordings (the parts of a rotated one) as one session",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="with -w: record without printing the stream")
    p.add_argument(
        "--force", action="store_true", help="with -w, --export-trace or --report: overwrite FILE if it exists"
    )
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
        "--signal-buffer-size",
        type=buffer_size_arg,
        metavar="SIZE",
        help="the signals' own kernel buffer, likewise (default: as --buffer-size)",
    )
    p.add_argument(
        "--argv-max",
        type=argv_limit,
        default=ARGV_MAX_DEFAULT,
        metavar="BYTES",
        help=f"argument bytes read per exec; longer lists are cut and flagged (default {ARGV_MAX_DEFAULT})",
    )
    p.add_argument(
        "--signal-rate",
        type=signal_rate_arg,
        default=SIGNAL_RATE_DEFAULT,
        metavar="N",
        help="signals a second of one sender, target and signal beyond which the kernel counts them instead "
        f"of sending each (never a signal that may kill; 0: no limit; default {SIGNAL_RATE_DEFAULT})",
    )
    p.add_argument(
        "--all-signals",
        action="store_true",
        help="stream every signal: no folding of ptrace stops, no rate limit",
    )
    p.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour the stream (default: auto)"
    )
    p.add_argument("--as-root", action="store_true", help="with -- COMMAND under sudo: run COMMAND as root")
    t = p.add_argument_group("the live view (instead of the event stream)")
    t.add_argument(
        "--top",
        action="store_true",
        help="a full-screen view of the process tree as it changes: live processes, those just ended and how, "
        "the latest failures (keys: q quit, p pause, / filter, f failures, t threads, c collapse, s sort, "
        "j/k move, Enter timeline); with -w it records too; with -r it replays a recording",
    )
    t.add_argument(
        "--speed",
        type=speed_arg,
        metavar="N",
        help="with -r --top: replay at N times the recorded pace (space pauses and steps, r resumes); "
        "without it the whole recording is shown at once",
    )
    w = p.add_argument_group("recording rotation (with -w FILE: FILE, FILE.1, ...; SIGUSR1 starts the next file)")
    w.add_argument(
        "--rotate-size",
        type=parse_size,
        metavar="SIZE",
        help="start the next file once the current one holds SIZE bytes (K, M, G suffixes), between batches",
    )
    w.add_argument(
        "--rotate-time",
        type=duration_arg,
        metavar="DURATION",
        help="start the next file every DURATION (30s, 10m, 1h, or seconds); FILE may hold strftime fields "
        "(%%Y%%m%%d-%%H%%M%%S), expanded in UTC at each file's start",
    )
    w.add_argument(
        "--keep",
        type=keep_arg,
        metavar="N",
        help="keep the latest N files of this session, deleting older ones it made (never other files)",
    )
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
        "--report",
        metavar="FILE.html",
        help="also write the session as one self-contained HTML page: the process tree, a timeline, "
        "each process's life (opens offline in any browser; live, written when the session ends)",
    )
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
    f.add_argument(
        "--cgroup",
        action="append",
        default=[],
        type=cgroup_arg,
        metavar="PATH",
        help="processes in the cgroup v2 PATH or any cgroup below it, also ones made later; PATH as "
        "/proc/PID/cgroup gives it (/system.slice/x.service) or its directory under the mount point "
        "(repeatable; live, it must exist)",
    )
    f.add_argument(
        "--unit",
        action="append",
        default=[],
        type=unit_arg,
        metavar="NAME",
        help="processes in the systemd unit NAME (a cgroup path component; NAME without a suffix "
        "is NAME.service, as for systemctl; repeatable)",
    )
    f.add_argument(
        "--container",
        action="append",
        default=[],
        type=container_arg,
        metavar="ID",
        help="processes in the container whose 64-hex-digit id starts with ID (Docker, containerd, "
        "CRI-O, Podman; repeatable). --cgroup, --unit and --container each restrict the rest",
    )
    s = p.add_argument_group("environment and secrets (secrets are redacted before anything is printed or written)")
    s.add_argument(
        "--env",
        action="store_true",
        help=f"exec events carry the new image's environment (up to {ENV_MAX_DEFAULT} bytes, cut and flagged "
        "beyond); values of secret-looking variables are redacted. Not with -r: a recording has them or not",
    )
    s.add_argument(
        "--env-allow",
        action="append",
        type=env_name_arg,
        metavar="NAME",
        help="keep only variable NAME of the environment, dropping the rest (repeatable; implies --env; "
        "a secret-looking NAME is still redacted; with -r, narrows the recorded environment)",
    )
    s.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also redact variables and --flag=VALUE arguments whose name matches PATTERN, a regular expression "
        "searched case-insensitively (repeatable; added to the built-in TOKEN, SECRET, PASSWORD, KEY, AUTH, ... rules)",
    )
    s.add_argument(
        "--no-redact",
        action="store_true",
        help="show secrets in argv and the environment as they are (recordings say so in their header)",
    )
    x = p.add_argument_group("export (to Prometheus and OpenTelemetry; live, or while -r replays)")
    x.add_argument(
        "--metrics",
        type=metrics_arg,
        metavar="[ADDR:]PORT",
        help="serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR 127.0.0.1 unless given: "
        "0.0.0.0:9090, [::1]:9090): events by type, losses, exits by outcome, exec failures by errno, "
        "live processes, the tracer's own CPU and memory",
    )
    x.add_argument(
        "--otlp",
        type=otlp_arg,
        metavar="URL",
        help="send each event as an OpenTelemetry log record over OTLP/HTTP to URL "
        "(http://HOST:4318 gets /v1/logs appended); never holds up tracing: beyond a bounded queue, "
        "events are dropped and counted",
    )
    p.add_argument("--doctor", action="store_true", help="check each prerequisite of live tracing and exit")
    p.add_argument("--version", action="version", version=f"proctrace {__version__}")
    return p


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


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
        cgroups=tuple(args.cgroup),
        units=tuple(args.unit),
        containers=tuple(args.container),
    )
    EventFilter(spec)  # compiles the patterns: a bad one fails before anything starts
    return spec


def redaction_options(args: argparse.Namespace) -> RedactionOptions:
    options = RedactionOptions(
        enabled=not args.no_redact,
        patterns=tuple(args.redact),
        env_allow=None if args.env_allow is None else tuple(dict.fromkeys(args.env_allow)),
    )
    from proctrace.session.pipeline import session_redactor

    session_redactor(options)  # compiles the patterns: a bad one fails before anything starts
    return options


def rotation_options(args: argparse.Namespace) -> RotationOptions | None:
    if args.rotate_size is None and args.rotate_time is None:
        return None
    return RotationOptions(size=args.rotate_size, interval_s=args.rotate_time, keep=args.keep)


def session_options(args: argparse.Namespace, command: list[str] | None) -> SessionOptions:
    """The parsed arguments as the session takes them. Raises FilterError or
    RedactError for a bad pattern."""
    return SessionOptions(
        outputs=OutputOptions(
            json=args.json,
            output_path=args.output,
            record_path=args.write,
            quiet=args.quiet,
            force=args.force,
            color=args.color,
            timeline=None if args.timeline is None else tuple(args.timeline),
            tree=args.tree,
            summary=args.summary,
            export_path=args.export_trace,
            report_path=args.report,
            top=args.top,
            speed=args.speed,
            rotation=rotation_options(args),
        ),
        filters=filter_spec(args),
        transport=TransportOptions(
            buffer=args.buffer,
            buffer_size=args.buffer_size,
            signal_buffer_size=args.signal_buffer_size,
            argv_max=args.argv_max,
            signal_rate=args.signal_rate,
            all_signals=args.all_signals,
            # Read by the kernel only live; a recording has an environment or not.
            env=(args.env or args.env_allow is not None) and args.read is None,
        ),
        redaction=redaction_options(args),
        exports=ExportOptions(metrics=args.metrics, otlp=args.otlp),
        command=None if command is None else tuple(command),
        as_root=args.as_root,
        read_path=args.read[0] if args.read else None,
        read_more=tuple(args.read[1:]) if args.read else (),
    )


def run_session(options: SessionOptions) -> SessionResult:
    # Imported here so that --help, --version and argument errors never pay for
    # them, and a replay never imports what attaches to the kernel.
    if options.read_path is not None:
        from proctrace.session.replay import replay

        return replay(options.read_path, options)
    from proctrace.session.live import trace_live

    return trace_live(options)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    own, command = split_command(raw)
    parser = build_parser()
    args, extra = parser.parse_known_args(own)
    if extra:
        # `-r parts/*` gives -r one file; the shell's others land here.
        hint = "to read several recordings, repeat -r or give -r their directory" if args.read else None
        parser.error(f"unrecognized arguments: {' '.join(extra)} ({hint or 'a command to run goes after --'})")
    if command is not None and not command:
        parser.error("no command after --")
    if args.quiet and not args.write:
        parser.error("-q records without printing: it needs -w FILE")
    rotating = args.rotate_size is not None or args.rotate_time is not None
    if (rotating or args.keep is not None) and not args.write:
        parser.error("--rotate-size, --rotate-time and --keep rotate a recording: they need -w FILE")
    if args.keep is not None and not rotating:
        parser.error("--keep N keeps the latest N files of a rotation: it needs --rotate-size or --rotate-time")
    if args.read and command is not None:
        parser.error("-r reads a recording; it cannot also run a command")
    if args.read and args.env:
        parser.error("--env reads environments while tracing; a recording has them or not (--env-allow narrows them)")
    if args.top:
        clash = [
            flag
            for flag, given in (
                ("--json", args.json), ("-o", args.output), ("-q", args.quiet),
                ("--timeline", args.timeline is not None), ("--tree", args.tree), ("--summary", args.summary),
            )
            if given
        ]  # fmt: skip
        if clash:
            parser.error(f"--top draws its own screen: it cannot be combined with {', '.join(clash)}")
    if args.speed is not None and not (args.top and args.read):
        parser.error("--speed paces a replay in the live view: it needs -r FILE --top")
    if args.no_redact and args.redact:
        parser.error("--redact adds to the redaction that --no-redact turns off: give one or the other")
    if (args.env or args.env_allow) and not args.read and ARGV_MAX_LIMIT - args.argv_max < ENV_MIN:
        parser.error(f"--env needs room beside the arguments: --argv-max at most {ARGV_MAX_LIMIT - ENV_MIN}")
    from proctrace.export.errors import ExportError
    from proctrace.formats.recording import RecordingError
    from proctrace.top.terminal import TerminalError

    try:
        if args.doctor:
            from proctrace.doctor import run_doctor

            return run_doctor(sys.stdout)
        result = run_session(session_options(args, command))
        if result.leave_without_cleanup:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(result.exit_code)
        return result.exit_code
    except CommandError as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return 127
    except (TerminalError, ExportError) as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except (FilterError, RedactError, RecordingError) as exc:
        print(f"proctrace: {safe(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KernelError as exc:  # prerequisites, bcc, BTF, tracepoint formats, loading the programs
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
