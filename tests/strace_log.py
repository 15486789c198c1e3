"""Read what `strace -f -o LOG` saw: every exec attempt and every task's end.

strace is the oracle of tests/live/test_strace_agreement.py: it stops each
tracee at every syscall, so what it logs is what the tracees did, seen from
outside the kernel's tracepoints that proctrace reads. The log it writes with
STRACE_FLAGS (below) is parsed here into:

* every execve/execveat attempt: the calling task, the pid the new image runs
  under, the file name, argv when strace printed it whole, and the result
  (success, or the errno's name, e.g. ENOENT);
* every task's end: `+++ exited with N +++`, `+++ killed by SIGX [(core
  dumped)] +++`, and the old leader that a thread's exec replaced (`+++
  superseded by execve in pid T +++`), each marked as the end of the whole
  process or of one thread.

Two of strace's ways of writing matter here:

* A call whose result comes later is split in two lines, `NAME(ARGS
  <unfinished ...>` and, in the same task, `<... NAME resumed>REST`; other
  tasks' lines may come in between. The two halves are joined before parsing.
* A non-leader thread T of process L that execs takes L's pid (the kernel
  gives the new image the leader's pid): strace prints T's `execve(...
  <unfinished ...>` (strace 6 may write `<pid changed to L ...>` instead),
  then `L +++ superseded by execve in pid T +++`, then `L <... execve resumed>)
  = 0`. So the call is T's, its success is L's, the old leader's task ended
  without an exit status of its own, and T's thread id is gone without an
  exit. Older strace versions also print `[ Process PID=L runs in 64 bit mode.
  ]` when the personality changed across an exec: informational, skipped.

Which tasks are threads is known from the clone family, which STRACE_FLAGS
traces for that reason: a task made by clone/clone3 with CLONE_THREAD is a
thread; one made by fork, vfork or clone without it is a process, and so is
the first task of the log (the command strace started). A task's own lines can
come before its creator's clone returns, so a task's kind is settled when the
whole log has been read. Only the leader's exit is the process's: the kernel
reports a leader to its tracer only when the whole thread group is gone, with
the status its parent's wait() sees.

Pure Python, no root: tests/test_strace_log.py runs it on canned logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# Every flag matters to the parser or to the test:
# -f        follow every fork, vfork and clone: all descendants are tracees;
# -q        no attach/detach chatter; NOT -qq, which hides `+++ exited with N +++`;
# -ttt      a timestamp on each line, for a reader of a failure's log;
# -s 65535  strings (file names, arguments) printed whole, not cut at 32 bytes;
# -xx       every byte of every string as \xHH, so no quoting or locale can
#           make a string ambiguous and the exact bytes come back;
# -e trace  only the exec calls and the clone family (which says which task is a
#           thread). strace still stops the tracees at every syscall (no
#           --seccomp-bpf), which is the SIGCHLD flood the test is about. No
#           -e signal=none: strace prints `+++ killed by SIGX +++` only for the
#           signals it is told to show.
STRACE_FLAGS: tuple[str, ...] = (
    "-f",
    "-q",
    "-ttt",
    "-s",
    "65535",
    "-xx",
    "-e",
    "trace=execve,execveat,fork,vfork,clone,clone3",
)

EXEC_CALLS = frozenset({"execve", "execveat"})
CLONE_CALLS = frozenset({"clone", "clone3", "fork", "vfork"})

# The kernel's limits for `#!` scripts (fs/binfmt_script.c, include/linux/binfmts.h).
SHEBANG_LINE_MAX = 256  # BINPRM_BUF_SIZE: only this much of the file is looked at
INTERPRETER_DEPTH_MAX = 4  # an interpreter may itself be a script, this many times over


class StraceLogError(ValueError):
    """A log line, or a sequence of lines, that this parser cannot account for."""


@dataclass(frozen=True)
class ExecAttempt:
    """One execve/execveat call, as strace printed it."""

    line: int  # the line where the call's result is (1-based)
    pid: int  # the task that called exec
    result_pid: int  # the pid the new image runs under: the leader's after a thread's exec
    syscall: str
    dirfd: str | None  # execveat's first argument as printed (AT_FDCWD or a number)
    filename: bytes | None  # None when strace printed an address, not a string
    argv: tuple[bytes, ...] | None  # None unless strace printed the whole list
    result: int | None  # 0 or -1; None when strace printed `?` (the task died in the call)
    errno: str | None  # the errno's name when result is -1
    timestamp: str | None

    @property
    def succeeded(self) -> bool:
        return self.result == 0

    @property
    def from_thread(self) -> bool:
        """A non-leader thread's exec: the new image took the leader's pid."""
        return self.result_pid != self.pid

    def kernel_filename(self) -> bytes | None:
        """The name the kernel gives the exec (bprm->filename), which its exec tracepoint reports.

        execve passes its path through. execveat with a directory fd and a
        relative path, or an empty path (AT_EMPTY_PATH), is named after the fd
        (fs/exec.c, alloc_bprm).
        """
        if self.filename is None:
            return None
        if self.syscall != "execveat" or self.dirfd in (None, "AT_FDCWD") or self.filename.startswith(b"/"):
            return self.filename
        if not self.filename:
            return f"/dev/fd/{self.dirfd}".encode()
        return f"/dev/fd/{self.dirfd}/".encode() + self.filename


@dataclass(frozen=True)
class TaskEnd:
    """The end of one task (thread id) as strace printed it."""

    line: int
    pid: int  # the thread id
    how: str  # "exited", "killed" or "superseded" (an old leader replaced by a thread's exec)
    exit_code: int | None  # for "exited"
    signal: str | None  # for "killed", e.g. "SIGTERM"
    core_dumped: bool
    process_exit: bool  # the end of the whole process (its leader's end), not of one thread
    timestamp: str | None


@dataclass(frozen=True)
class Clone:
    """A task made by fork, vfork, clone or clone3."""

    line: int
    pid: int  # the task that called
    child: int
    thread: bool  # CLONE_THREAD: a thread of the caller's process, not a new process


@dataclass(frozen=True)
class StraceLog:
    execs: tuple[ExecAttempt, ...]
    ends: tuple[TaskEnd, ...]
    clones: tuple[Clone, ...]
    first_pid: int | None  # the command strace started
    never_resumed: tuple[str, ...]  # calls left `<unfinished ...>` at the end of the log
    # Lines of calls strace printed as `???`: it could not tell which syscall the
    # task was in. Not execs as far as this log can say; if one was, proctrace's
    # exec has no match here and the comparison shows it.
    unknown_calls: tuple[int, ...]

    def process_exits(self) -> list[TaskEnd]:
        return [end for end in self.ends if end.process_exit]


# `PID [TIMESTAMP] REST`; the timestamp in any of -t, -tt or -ttt's forms.
_LINE = re.compile(r"(?P<pid>\d+)\s+(?:(?P<ts>\d+(?:\.\d+)?|\d\d:\d\d:\d\d(?:\.\d+)?)\s+)?(?P<rest>.*)")
_EXITED = re.compile(r"\+\+\+ exited with (?P<code>\d+) \+\+\+")
_KILLED = re.compile(r"\+\+\+ killed by (?P<sig>SIG[\w+-]+|\d+)(?P<core> \(core dumped\))? \+\+\+")
_SUPERSEDED = re.compile(r"\+\+\+ superseded by execve in pid (?P<tid>\d+) \+\+\+")
# A call's name; `???` when strace could not tell which syscall a stop was in.
_NAME = r"(?P<name>\w+|\?\?\?)"
_UNFINISHED = re.compile(rf"(?P<call>{_NAME}\(.*?)\s*<unfinished \.\.\.>")
_PID_CHANGED = re.compile(rf"(?P<call>{_NAME}\(.*?)\s*<pid changed to \d+ \.\.\.>")
_RESUMED = re.compile(rf"<\.\.\. {_NAME} resumed>(?P<tail>.*)")
_CALL = re.compile(rf"{_NAME}\((?P<args>.*)\)\s+=\s+(?P<ret>.*)")
_RESULT = re.compile(r"(?P<value>-?\d+|0x[0-9a-f]+|\?)(?:\s+(?P<errno>E[A-Z0-9]+)\b)?")
_INFORMATIONAL = re.compile(r"\[ Process PID=\d+ runs in .* mode\. \]|--- .* ---|<detached \.\.\.>")


def decode_c_string(body: str) -> bytes:
    """The bytes of a string strace printed (its text between the quotes): \\xHH, octal and C escapes.

    Python's unicode_escape codec reads the same escapes; the log was read as
    Latin-1, so each character that is not an escape is one byte.
    """
    return body.encode("latin-1").decode("unicode_escape").encode("latin-1")


def split_arguments(args: str) -> list[str]:
    """A call's arguments split at the top-level commas (none inside strings, [], {}, () or comments)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(args):
        ch = args[i]
        if ch == '"':
            i += 1
            while i < len(args) and args[i] != '"':
                i += 2 if args[i] == "\\" else 1
        elif args.startswith("/*", i):
            end = args.find("*/", i + 2)
            i = len(args) if end < 0 else end + 1
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[start:i].strip())
            start = i + 1
        i += 1
    tail = args[start:].strip()
    if tail or parts:
        parts.append(tail)
    return parts


_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')


def parse_string(arg: str) -> tuple[bytes, bool] | None:
    """(bytes, whole) for a printed string; whole is False when strace cut it (`"..."...`). None: not a string."""
    match = _STRING.fullmatch(arg)
    if match is None:
        return None
    return decode_c_string(match.group(1)), match.group(2) is None


def parse_string_array(arg: str) -> tuple[bytes, ...] | None:
    """A printed argv, when strace printed every element whole; else None (an address, `...`, a cut string)."""
    if not (arg.startswith("[") and arg.endswith("]")):
        return None
    elements: list[bytes] = []
    for item in split_arguments(arg[1:-1]):
        parsed = parse_string(item)
        if parsed is None or not parsed[1]:
            return None
        elements.append(parsed[0])
    return tuple(elements)


@dataclass
class _Task:
    """One lifetime of a thread id in the log (ids are reused after a task ends)."""

    thread: bool | None  # None until the clone that made it is seen


@dataclass
class _End:
    """A task's end line, whose kind (thread or process) is settled when the log is read."""

    task: _Task
    line: int
    pid: int
    how: str
    ts: str | None
    exit_code: int | None = None
    signal: str | None = None
    core_dumped: bool = False


@dataclass
class _Pending:
    call: str  # `NAME(ARGS` so far
    caller: int  # the task that made the call (differs from the key after a thread's exec)


class _Parser:
    def __init__(self) -> None:
        self.execs: list[ExecAttempt] = []
        self.ends: list[_End] = []
        self.clones: list[Clone] = []
        self.unknown_calls: list[int] = []
        self.current: dict[int, _Task] = {}  # the live lifetime of each thread id
        self.last_ended: dict[int, _Task] = {}  # the lifetime that ended last, per thread id
        self.pending: dict[int, _Pending] = {}  # unfinished calls, by the task whose line resumes them
        self.first_pid: int | None = None

    def task(self, pid: int) -> _Task:
        found = self.current.get(pid)
        if found is None:
            # The first task of the log is the command strace started: a process.
            found = _Task(thread=False if self.first_pid is None else None)
            if self.first_pid is None:
                self.first_pid = pid
            self.current[pid] = found
        return found

    def end_task(self, end: _End) -> None:
        self.ends.append(end)
        self.last_ended[end.pid] = self.current.pop(end.pid)
        died_in = self.pending.pop(end.pid, None)
        if died_in is not None and end.how != "superseded" and died_in.call.startswith(("execve(", "execveat(")):
            # Killed inside exec before strace could print even `= ?`: the outcome is
            # as unseen as with `= ?`. Any other call a task died in is no fact here.
            self.call(end.line, died_in.caller, end.pid, died_in.call + ") = ?", end.ts)

    def feed(self, number: int, raw: str) -> None:
        line = raw.rstrip("\n")
        if not line.strip():
            return
        match = _LINE.fullmatch(line)
        if match is None:
            raise StraceLogError(f"line {number}: no pid at the start (was the log written with -f?): {line!r}")
        pid, ts, rest = int(match["pid"]), match["ts"], match["rest"]
        task = self.task(pid)
        if _INFORMATIONAL.fullmatch(rest):
            return
        if m := _EXITED.fullmatch(rest):
            self.end_task(_End(task, number, pid, "exited", ts, exit_code=int(m["code"])))
        elif m := _KILLED.fullmatch(rest):
            self.end_task(_End(task, number, pid, "killed", ts, signal=m["sig"], core_dumped=bool(m["core"])))
        elif m := _SUPERSEDED.fullmatch(rest):
            self.superseded(_End(task, number, pid, "superseded", ts), int(m["tid"]))
        elif (m := _UNFINISHED.fullmatch(rest)) or (m := _PID_CHANGED.fullmatch(rest)):
            # `<pid changed to L ...>` is strace 6's way of writing a thread's exec;
            # the superseded line that follows in the leader moves the call there.
            self.pending[pid] = _Pending(m["call"], pid)
        elif m := _RESUMED.fullmatch(rest):
            started = self.pending.pop(pid, None)
            if started is None or not started.call.startswith(m["name"] + "("):
                raise StraceLogError(f"line {number}: {m['name']} resumed in {pid}, which had not started it")
            self.call(number, started.caller, pid, started.call + m["tail"], ts)
        else:
            self.call(number, pid, pid, rest, ts)

    def superseded(self, old_leader: _End, tid: int) -> None:
        """Thread `tid` exec'd: its call resumes in the leader, whose old task has ended."""
        leader = old_leader.pid
        started = self.pending.pop(tid, None)
        if started is None or not started.call.startswith(("execve(", "execveat(")):
            raise StraceLogError(f"line {old_leader.line}: {leader} superseded by {tid}, which was not in an exec")
        self.end_task(old_leader)
        self.pending[leader] = started  # replaces any call the old leader was in: it never returns
        # The exec'ing thread's id is gone without an exit of its own; the new
        # image is the process, under the leader's pid.
        if tid in self.current:
            self.last_ended[tid] = self.current.pop(tid)
        self.task(leader).thread = False

    def call(self, number: int, caller: int, pid: int, text: str, ts: str | None) -> None:
        match = _CALL.fullmatch(text)
        if match is None:
            raise StraceLogError(f"line {number}: not a system call line: {text!r}")
        name = match["name"]
        if name == "???":
            self.unknown_calls.append(number)
        elif name in EXEC_CALLS:
            self.exec_call(number, caller, pid, name, match["args"], match["ret"], ts)
        elif name in CLONE_CALLS:
            self.clone_call(number, caller, name, match["args"], match["ret"])

    def exec_call(self, number: int, caller: int, pid: int, name: str, args: str, ret: str, ts: str | None) -> None:
        parts = split_arguments(args)
        dirfd = None
        if name == "execveat":
            dirfd, parts = parts[0], parts[1:]
        filename = parse_string(parts[0]) if parts else None
        result = _RESULT.match(ret)
        if result is None:
            raise StraceLogError(f"line {number}: unreadable result {ret!r}")
        value = None if result["value"] == "?" else int(result["value"], 0)
        self.execs.append(
            ExecAttempt(
                line=number,
                pid=caller,
                result_pid=pid if value == 0 else caller,
                syscall=name,
                dirfd=dirfd,
                filename=filename[0] if filename and filename[1] else None,
                argv=parse_string_array(parts[1]) if len(parts) > 1 else None,
                result=value,
                errno=result["errno"],
                timestamp=ts,
            )
        )

    def clone_call(self, number: int, caller: int, name: str, args: str, ret: str) -> None:
        result = _RESULT.match(ret)
        if result is None or result["value"] == "?" or int(result["value"], 0) <= 0:
            return  # failed, or restarted (ERESTARTNOINTR): no task was made
        child = int(result["value"], 0)
        thread = name in ("clone", "clone3") and re.search(r"\bCLONE_THREAD\b", args) is not None
        self.clones.append(Clone(number, caller, child, thread))
        # The child's own lines may have come first, and it may even have ended
        # before its creator's call returned.
        made = self.current.get(child)
        if made is None or made.thread is not None:
            ended = self.last_ended.get(child)
            made = ended if ended is not None and ended.thread is None else self.task(child)
        made.thread = thread

    def result(self) -> StraceLog:
        ends = []
        for end in self.ends:
            if end.task.thread is None:
                raise StraceLogError(f"line {end.line}: the end of {end.pid}, whose creation the log does not show")
            ends.append(
                TaskEnd(
                    line=end.line,
                    pid=end.pid,
                    how=end.how,
                    exit_code=end.exit_code,
                    signal=end.signal,
                    core_dumped=end.core_dumped,
                    process_exit=end.how != "superseded" and not end.task.thread,
                    timestamp=end.ts,
                )
            )
        never_resumed = tuple(f"{pid}: {p.call}" for pid, p in self.pending.items())
        return StraceLog(
            tuple(self.execs), tuple(ends), tuple(self.clones), self.first_pid, never_resumed, tuple(self.unknown_calls)
        )


def script_interpreter(head: bytes) -> tuple[bytes, bytes | None] | None:
    """The interpreter and its one optional argument that a `#!` line names, read as the kernel reads it.

    fs/binfmt_script.c: only the first line within the first 256 bytes counts;
    spaces and tabs around the interpreter's name are skipped; what follows it,
    less trailing spaces and tabs, is one argument, spaces and all.
    """
    if not head.startswith(b"#!"):
        return None
    line = head[2:SHEBANG_LINE_MAX].split(b"\n", 1)[0].strip(b" \t")
    if not line:
        return None
    name, argument = re.fullmatch(rb"([^ \t]+)[ \t]*(.*)", line, re.DOTALL).groups()  # type: ignore[union-attr]
    return name, argument or None


def expected_argv(attempt: ExecAttempt, read_head: Callable[[bytes], bytes | None]) -> tuple[bytes, ...] | None:
    """The argv the new image of a successful exec holds, which is what proctrace reads from its memory.

    For a binary, the argv strace printed. For a `#!` script the kernel drops
    argv[0] and puts the interpreter, its optional argument and the script's
    name (bprm->filename) in front, as many times over as interpreters are
    scripts. `read_head(path)` gives a file's first bytes or None when it cannot
    be read; then, or when a path is relative to a directory this side cannot
    know (the tracee's working directory), the answer is None: not knowable here.
    """
    filename = attempt.kernel_filename()
    if attempt.argv is None or filename is None:
        return None
    # Since Linux 5.18 an empty argv gets an empty argv[0] (fs/exec.c, do_execveat_common).
    argv = attempt.argv or (b"",)
    interpreted = filename
    for _ in range(INTERPRETER_DEPTH_MAX + 1):
        if not interpreted.startswith(b"/"):
            return None
        head = read_head(interpreted)
        if head is None:
            return None
        interpreter = script_interpreter(head)
        if interpreter is None:
            return argv
        name, argument = interpreter
        argv = (name, *((argument,) if argument is not None else ()), interpreted, *argv[1:])
        interpreted = name
    return None  # the kernel refuses deeper nesting (ELOOP): the exec could not have succeeded


def read_file_head(path: bytes) -> bytes | None:
    """The first bytes of a file, as much as the kernel looks at for `#!`; None if it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(SHEBANG_LINE_MAX)
    except OSError:
        return None


def parse_strace_log(lines: Iterable[str]) -> StraceLog:
    """Parse the lines of a log written by `strace STRACE_FLAGS -o LOG`."""
    parser = _Parser()
    for number, line in enumerate(lines, 1):
        parser.feed(number, line)
    return parser.result()


def read_strace_log(path: Path) -> StraceLog:
    with path.open(encoding="latin-1") as log:
        return parse_strace_log(log)
