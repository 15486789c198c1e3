"""How proctrace's events and strace's log are compared, fact for fact (tests/live/test_strace_agreement.py).

Pure Python, no root: tests/test_strace_agreement.py runs it on canned logs and
events, so that each way of disagreeing is shown to fail.

For each task strace traced, the facts compared are:

* successful execs: pid (the leader's after a thread's exec), the calling
  thread when it was not the leader (old_pid), file name; and argv where strace
  printed it whole and the argv of the new image can be known (a `#!` script's
  image holds its interpreter's argv; tests/strace_log.py says how);
* failed execs: the calling thread, the file name as passed, the errno
  (and argv, where both printed it whole);
* process exits: exit code, killing signal, core dump, by process;
* task ends: every thread id that ended, so a lost thread exit shows too;
* forks: every process and thread a tracee made (caller, child, thread or not).

Which processes are strace's tracees: proctrace's command process is strace
itself, and before it starts its command strace forks two short-lived children
of its own to probe the kernel's ptrace (test_ptrace_seize's child, which it
kills with SIGKILL, and the PTRACE_GET_SYSCALL_INFO probe's, which exits 0;
neither execs). strace neither traces nor logs them. So the events of strace's
process and of its children other than its first tracee are left out, and
nothing else: every other task in the trace descends from the tracee.

Losses: a `lost` record of class "signal" is allowed (and counted); any other
class, or a `lost` record without a class (the schema before classes), is a
lifecycle loss.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.strace_log import ExecAttempt, StraceLog, expected_argv, read_file_head


def raw(text: str) -> bytes:
    """The bytes of a string proctrace chose to write (README: surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


FACT_KINDS = ("execs", "forks", "process_exits", "task_ends")
Argv = tuple[bytes, ...]
ReadHead = Callable[[bytes], bytes | None]  # a file's first bytes, or None (tests/strace_log.py, read_file_head)


@dataclass
class Facts:
    """What one side saw, in the same terms for both.

    execs: (pid, old_pid, filename, errno); forks: (caller, child, thread);
    process_exits: (tgid, exit code, signal, core dumped); task_ends: thread id.
    """

    counts: dict[str, Counter[Any]] = field(default_factory=lambda: {kind: Counter() for kind in FACT_KINDS})
    where: dict[tuple[str, Any], list[str]] = field(default_factory=lambda: defaultdict(list))  # for reports
    # Per exec key: (when, the argv this side knows for it or None); "when" orders one side's execs.
    argvs: dict[tuple[Any, ...], list[tuple[int, Argv | None]]] = field(default_factory=lambda: defaultdict(list))
    # strace only: exec calls the task died in, whose outcome strace never saw (`= ?`).
    unseen_outcomes: list[ExecAttempt] = field(default_factory=list)

    def add(self, kind: str, key: Any, where: str) -> None:
        self.counts[kind][key] += 1
        self.where[(kind, key)].append(where)

    def add_exec(self, key: tuple[Any, ...], when: int, where: str, argv: Argv | None) -> None:
        self.add("execs", key, where)
        self.argvs[key].append((when, argv))


def strace_facts_of(log: StraceLog, read_head: ReadHead) -> Facts:
    """strace's facts; read_head reads the files exec'd, to know a script's image's argv (expected_argv)."""
    facts = Facts()
    for attempt in log.execs:
        if attempt.result is None:
            facts.unseen_outcomes.append(attempt)
            continue
        argv = expected_argv(attempt, read_head) if attempt.succeeded else attempt.argv
        facts.add_exec(strace_exec_key(attempt), attempt.line, f"strace.log:{attempt.line}", argv)
    for clone in log.clones:
        facts.add("forks", (clone.pid, clone.child, clone.thread), f"strace.log:{clone.line}")
    for end in log.ends:
        facts.add("task_ends", end.pid, f"strace.log:{end.line}")
        if end.process_exit:
            facts.add("process_exits", (end.pid, end.exit_code, end.signal, end.core_dumped), f"strace.log:{end.line}")
    return facts


def strace_exec_key(attempt: ExecAttempt) -> tuple[Any, ...]:
    if attempt.succeeded:
        old_pid = attempt.pid if attempt.from_thread else None
        return (attempt.result_pid, old_pid, attempt.kernel_filename(), None)
    return (attempt.pid, None, attempt.filename, attempt.errno)  # the caller's, under the name it passed


def settle_unseen_outcomes(oracle: Facts, traced: Facts, read_head: ReadHead) -> None:
    """Take proctrace's word for the outcome of each exec call strace saw begin but not end.

    A task killed (SIGKILL) inside execve never makes its syscall-exit stop, so
    strace prints `= ?`: the exec may have passed the point of no return (a
    new image, which the kernel's exec tracepoint reports) or not (the
    syscall-exit tracepoint reports an error). Either way proctrace has
    exactly one exec event for the call; it must be for this task and this
    file, else the call stays a disagreement with errno "?".
    """
    for attempt in oracle.unseen_outcomes:
        success = (attempt.pid, None, attempt.kernel_filename(), None)
        spare = traced.counts["execs"] - oracle.counts["execs"]
        outcomes = [
            key
            for key in spare
            if key == success or (key[:3] == (attempt.pid, None, attempt.filename) and key[3] is not None)
        ]
        key = outcomes[0] if outcomes else (attempt.pid, None, attempt.filename, "?")
        argv = expected_argv(attempt, read_head) if key == success else attempt.argv
        where = f"strace.log:{attempt.line} (`= ?`: outcome taken from proctrace)"
        oracle.add_exec(key, attempt.line, where, argv)


def tracee_events(events: list[dict[str, Any]], strace_pid: int, first_tracee: int) -> list[dict[str, Any]]:
    """The events of strace's tracees: all but strace's own and its probing children's (module docstring)."""
    probes: set[int] = set()
    kept = []
    for event in events:
        tgid = event.get("tgid")
        if event["type"] == "fork" and tgid == strace_pid and not event["thread"]:
            if event["child_tgid"] != first_tracee:
                probes.add(event["child_tgid"])
            continue
        if tgid == strace_pid:
            continue
        if tgid in probes:
            assert event["type"] != "exec", f"strace's probing child exec'd: {event}"
            if event["type"] == "exit" and event["process_exit"]:
                probes.discard(tgid)  # its pid may be a tracee's later
            continue
        kept.append(event)
    return kept


def proctrace_facts_of(events: Iterable[dict[str, Any]]) -> Facts:
    facts = Facts()
    for event in events:
        where = f"ts_ns {event['ts_ns']}"
        if event["type"] == "exec":
            key = (event["pid"], event["old_pid"], raw(event["filename"]), event["errno"])
            whole = not (event["argv_truncated"] or event["argv_unreadable"] or event["filename_truncated"])
            facts.add_exec(key, event["ts_ns"], where, tuple(raw(a) for a in event["argv"]) if whole else None)
        elif event["type"] == "fork":
            facts.add("forks", (event["pid"], event["child_pid"], event["thread"]), where)
        elif event["type"] == "exit":
            facts.add("task_ends", event["pid"], where)
            if event["process_exit"]:
                key = (event["tgid"], event["exit_code"], event["signal"], event["core_dumped"])
                facts.add("process_exits", key, where)
    return facts


@dataclass
class Agreement:
    disagreements: list[str]
    argvs_compared: int
    argvs_unknown: int  # strace's side could not know the new image's argv (a script since deleted)
    argvs_cut: int  # proctrace flagged the argv truncated or unreadable (said so, so not wrong)
    unseen_outcomes: int  # exec calls whose outcome strace did not see (settle_unseen_outcomes)


def compare(oracle: Facts, traced: Facts, read_head: ReadHead) -> Agreement:
    settle_unseen_outcomes(oracle, traced, read_head)
    disagreements = []
    for kind in FACT_KINDS:
        theirs, ours = oracle.counts[kind], traced.counts[kind]
        for side, facts, only in (("strace", oracle, theirs - ours), ("proctrace", traced, ours - theirs)):
            disagreements += [
                f"{kind}: only {side} saw {key!r} x{n} at {', '.join(facts.where[(kind, key)])}"
                for key, n in sorted(only.items(), key=repr)
            ]
    compared = unknown = cut = 0
    for key, expected in oracle.argvs.items():
        seen = [argv for _, argv in sorted(traced.argvs.get(key, []), key=lambda pair: pair[0])]
        # Unequal numbers of one exec are a disagreement of `execs` already.
        for want, got in zip([argv for _, argv in sorted(expected, key=lambda pair: pair[0])], seen, strict=False):
            unknown += want is None
            cut += want is not None and got is None
            if want is None or got is None:
                continue
            compared += 1
            if want != got:
                disagreements.append(f"argv of exec {key}: strace {want!r}, proctrace {got!r}")
    return Agreement(disagreements, compared, unknown, cut, len(oracle.unseen_outcomes))


def agree(
    log: StraceLog,
    events: list[dict[str, Any]],
    strace_pid: int,
    read_head: ReadHead = read_file_head,
) -> Agreement:
    """Compare strace's log with proctrace's events of `proctrace -- strace ...`, strace being strace_pid."""
    assert log.first_pid is not None, "strace's log is empty"
    tracees = tracee_events(events, strace_pid, log.first_pid)
    return compare(strace_facts_of(log, read_head), proctrace_facts_of(tracees), read_head)


@dataclass
class Losses:
    lifecycle: list[dict[str, Any]]  # lost records of class "lifecycle", or of no class (today's schema)
    signal_events: int

    @property
    def lifecycle_events(self) -> int:
        return sum(record["count"] for record in self.lifecycle)


def losses(events: list[dict[str, Any]]) -> Losses:
    lost = [e for e in events if e["type"] == "lost"]
    return Losses(
        lifecycle=[e for e in lost if e.get("class") != "signal"],
        signal_events=sum(e["count"] for e in lost if e.get("class") == "signal"),
    )


def fact_kinds(log: StraceLog) -> Counter[str]:
    """How many of each kind of fact strace saw: PATH searches, failures, deaths by signal, processes."""
    kinds: Counter[str] = Counter()
    results: dict[int, list[str | None]] = defaultdict(list)
    for attempt in log.execs:
        results[attempt.pid].append(attempt.errno)
        if attempt.errno is not None:
            kinds[attempt.errno] += 1
    for errnos in results.values():
        # An exec that succeeds after ENOENTs in the same task: a PATH search
        # (one process's whole list of attempts, since a success replaces it).
        kinds["path search"] += errnos[-1] is None and "ENOENT" in errnos
        kinds["not found"] += bool(errnos) and all(errno is not None for errno in errnos)
    for end in log.process_exits():
        kinds["process"] += 1
        kinds["killed"] += end.how == "killed"
        kinds["exit code != 0"] += bool(end.exit_code)
    return kinds
