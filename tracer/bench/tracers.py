"""Running each tracer the bench measures (proctrace, bpftrace, forkstat): the
command line of each configuration, waiting until the tracer is ready, stopping
it with SIGINT, and waiting until its probes are detached before the next run."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from proctrace.bench import BenchError, package_file
from proctrace.bench.machine import foreign_tracers

DETACH_WAIT_S = 10.0  # at most, for a stopped tracer's probes to be detached
PROCTRACE_READY = r"^proctrace: tracing"
_LIVE: dict[int, subprocess.Popen[str]] = {}  # tracers this bench started, for cleanup by pid


def proctrace_command() -> list[str]:
    """proctrace as users start it: the console script installed next to this
    Python (the virtualenv's), else this Python running the package."""
    script = Path(sys.executable).parent / "proctrace"
    return [str(script)] if script.exists() else [sys.executable, "-m", "proctrace"]


def bpftrace_program() -> str:
    return package_file("capture.bt").decode()


@dataclass
class Config:
    """One way of running the storm: untraced, or under one tracer with its options."""

    name: str
    tool: str  # "none", "proctrace", "bpftrace", "forkstat"
    args: list[str] = field(default_factory=list)
    output: str = "null"  # "null" or the counting format of its file: json, pretty, bpftrace, forkstat


def proctrace_argv(args: list[str], out: Path | None) -> list[str]:
    if "-q" in args:  # recording without a stream: there is no stream to redirect
        return [*proctrace_command(), *args]
    return [*proctrace_command(), *args, "-o", str(out) if out else "/dev/null"]


def recording_path(args: list[str]) -> Path | None:
    return Path(args[args.index("-w") + 1]) if "-w" in args else None


def recording_args(features: dict[str, bool], path: Path) -> list[str]:
    return ["-w", str(path), *(["-q"] if features["quiet"] else [])]


class TracerProcess:
    """One tracer run: started, waited for until ready, sampled, stopped with SIGINT.

    Readiness: `ready_stderr` is a pattern of a stderr line (proctrace's "tracing"
    line); `ready_file` a line that appears in the stdout file (bpftrace's BEGIN);
    otherwise `settle` seconds pass (forkstat says nothing when it is ready).
    """

    def __init__(
        self,
        argv: list[str],
        stdout: Path | None = None,
        ready_stderr: str | None = None,
        ready_file: str | None = None,
        settle: float = 0.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.stdout_path = stdout
        self.ready_stderr = re.compile(ready_stderr) if ready_stderr else None
        self.ready_file = ready_file
        self.settle = settle
        self.lines: list[tuple[float, str]] = []
        self.ready_s: float | None = None
        self.attach_s: float | None = None  # bpftrace's "Attaching N probes..." line
        self._ready = threading.Event()
        # BPF tracers attached before this one started: stop() waits for any
        # other to let go, since proctrace detaches in a child after it exits.
        self._tracers_before = set(foreign_tracers({os.getpid()}))
        out = open(stdout, "w") if stdout else subprocess.DEVNULL  # noqa: SIM115 (closed in stop())
        self._out = out
        self.t0 = time.monotonic()
        # A session of its own: a Ctrl-C at the terminal reaches the bench, which
        # then stops its tracers in order, not all of them at once.
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            env=env,
        )
        _LIVE[self.proc.pid] = self.proc
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            now = time.monotonic()
            self.lines.append((now, line))
            if self.ready_stderr and self.ready_s is None and self.ready_stderr.search(line):
                self.ready_s = now - self.t0
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(line for _, line in self.lines)

    def _failed(self, why: str) -> BenchError:
        self.stop()
        return BenchError(f"{' '.join(self.argv[:3])}...: {why}: {self.stderr.strip()[-500:]}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        if self.ready_stderr:
            self._ready.wait(timeout)
            if self.ready_s is None:
                raise self._failed("never became ready")
        elif self.ready_file and self.stdout_path:
            deadline = self.t0 + timeout
            while True:
                with open(self.stdout_path, errors="replace") as f:
                    head = f.read(1 << 16)
                now = time.monotonic()
                if self.attach_s is None and "Attaching" in head:
                    self.attach_s = now - self.t0
                if self.ready_file in head:
                    self.ready_s = now - self.t0
                    break
                if self.proc.poll() is not None:
                    raise self._failed(f"exited with {self.proc.returncode} before it was ready")
                if now > deadline:
                    raise self._failed("never became ready")
                time.sleep(0.002)
        else:
            time.sleep(self.settle)  # not a measured start-up: ready_s stays None
        if self.proc.poll() is not None:
            raise self._failed(f"exited with {self.proc.returncode}")

    def wait_exit(self, timeout: float) -> None:
        """Wait until the tracer ends on its own: with -- COMMAND, when the command has."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failed(f"still running after {timeout:g} s") from None

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own process, by pid
                self.proc.wait()
        _LIVE.pop(self.proc.pid, None)
        self._reader.join(10)
        if self._out is not subprocess.DEVNULL:
            self._out.close()
        self._wait_detached()
        return self.proc.returncode

    def _wait_detached(self, timeout: float = DETACH_WAIT_S) -> None:
        """Wait until the probes this run attached are gone. proctrace hands them
        to a child that detaches after proctrace exits (~1 s of kernel grace
        periods); measuring the next run meanwhile would count their cost
        against it, and the bench would see a foreign tracer."""
        deadline = time.monotonic() + timeout
        while set(foreign_tracers({os.getpid()})) - self._tracers_before and time.monotonic() < deadline:
            time.sleep(0.05)


def start_tracer(config: Config, workdir: Path, to_file: bool) -> tuple[TracerProcess, Path | None]:
    """Start `config`'s tracer; its output goes to a file when it is to be counted."""
    out = workdir / f"{config.name.replace(' ', '_').replace('/', '_')}.out" if to_file else None
    if config.tool == "proctrace":
        recording = recording_path(config.args)
        if recording is not None:
            recording.unlink(missing_ok=True)  # -w refuses an existing file
        proc = TracerProcess(proctrace_argv(config.args, out), ready_stderr=PROCTRACE_READY)
    elif config.tool == "bpftrace":
        # Written to a file in tmpfs, never /dev/null: the ready line comes on stdout.
        out = out or workdir / "bpftrace.out"
        proc = TracerProcess(["bpftrace", "-e", bpftrace_program()], stdout=out, ready_file="READY")
    elif config.tool == "forkstat":
        out = out or workdir / "forkstat.out"
        proc = TracerProcess(["forkstat", *config.args], stdout=out, settle=0.5)
    else:
        raise ValueError(config.tool)
    return proc, out


@contextlib.contextmanager
def command_session(args: list[str], command: list[str], stdout: Path) -> Iterator[TracerProcess]:
    """`proctrace ARGS -- COMMAND`, ready (its probes attached, the command
    released), stopped on the way out; COMMAND's stdout goes to `stdout`."""
    tracer = TracerProcess([*proctrace_command(), *args, "--", *command], stdout=stdout, ready_stderr=PROCTRACE_READY)
    try:
        tracer.wait_ready()
        yield tracer
    finally:
        tracer.stop()


def stop_all(timeout: float = 30.0) -> None:
    """Stop the tracers this bench started and has not stopped (after an error or
    a Ctrl-C), by pid: never anything else."""
    for pid, proc in list(_LIVE.items()):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        _LIVE.pop(pid, None)
