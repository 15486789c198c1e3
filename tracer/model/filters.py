"""Which events to show: by command name, pid, uid, kind; following descendants.

Selection is stateful. A process becomes *selected* when it execs into a
matching name (its comm, or the basename of the file it exec'd, since the
kernel cuts comm to 15 bytes), when it is named with -p, or when it existed
at start with a matching name. With -f, everything a selected task forks is
selected too. An event is shown when it is about a selected task: the task
itself, a signal's sender or target, a reap's reaper or reaped child.

The kernel applies the same rules to the same sets (bpf/proctrace.bpf.c, the
`followed` map) where it can: pids, followed subtrees and literal names. It
may select more than this module does (a literal name longer than 15 bytes
matches on its first 15 there), never less, and this module runs after it
both live and on replay: so a filter gives the same events on a recording as
it gave live.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from proctrace.model.events import (
    EVENT_KINDS,
    SIGNAL_GENERATE,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
)
from proctrace.model.procsnap import ProcInfo

COMM_LEN = 15  # TASK_COMM_LEN - 1
_GLOB_CHARS = frozenset("*?[")


class FilterError(ValueError):
    """A filter the user gave cannot be used; the message says why."""


@dataclass(frozen=True)
class FilterSpec:
    comms: tuple[str, ...] = ()
    regex: bool = False
    follow: bool = False
    pids: tuple[int, ...] = ()
    uids: tuple[int, ...] = ()
    kinds: frozenset[str] = frozenset(EVENT_KINDS)
    exclude: tuple[str, ...] = ()
    no_threads: bool = False

    @property
    def selects(self) -> bool:
        """Whether only some processes are selected (else every process is)."""
        return bool(self.comms or self.pids)

    @property
    def literal_comms(self) -> bool:
        """All name patterns are plain names, which the kernel can match itself."""
        return not self.regex and all(not (_GLOB_CHARS & set(p)) for p in self.comms)

    def kernel_names(self) -> list[bytes]:
        """The comm values the kernel matches at exec: each name cut as the kernel cuts comm."""
        return sorted({p.encode()[:COMM_LEN] for p in self.comms})

    def as_dict(self) -> dict[str, object]:
        return {
            "comm": list(self.comms),
            "regex": self.regex,
            "follow": self.follow,
            "pid": list(self.pids),
            "uid": list(self.uids),
            "events": sorted(self.kinds),
            "exclude_comm": list(self.exclude),
            "no_threads": self.no_threads,
        }


def parse_kinds(text: str) -> frozenset[str]:
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - set(EVENT_KINDS)
    if unknown or not kinds:
        raise FilterError(
            f"unknown event kind {', '.join(sorted(unknown)) or repr(text)}: choose from {', '.join(EVENT_KINDS)}"
        )
    return kinds


def name_matcher(patterns: Iterable[str], regex: bool) -> Callable[[str], bool]:
    """A predicate on names: shell globs (the default) or regular expressions."""
    pats = list(patterns)
    if regex:
        try:
            compiled = [re.compile(p) for p in pats]
        except re.error as exc:
            raise FilterError(f"invalid regular expression {exc.pattern!r}: {exc}") from None
        return lambda name: any(c.search(name) for c in compiled)
    translated = [re.compile(fnmatch.translate(p)) for p in pats]
    return lambda name: any(t.match(name) for t in translated)


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class EventFilter:
    """Applies a FilterSpec to a stream of events in timestamp order."""

    def __init__(self, spec: FilterSpec) -> None:
        self.spec = spec
        self._match = name_matcher(spec.comms, spec.regex) if spec.comms else None
        self._exclude = name_matcher(spec.exclude, spec.regex) if spec.exclude else None
        # Task ids and process ids, as the kernel's `followed` map holds them.
        self.selected: set[int] = set(spec.pids)

    def seed(self, snapshot: Iterable[ProcInfo]) -> list[int]:
        """Select the processes that existed at start with a matching name; returns their pids."""
        if self._match is None:
            return []
        found = []
        for p in snapshot:
            exe = os.path.basename(_name(p.argv[0])) if p.argv else ""
            if self._match(_name(p.comm)) or (exe and self._match(exe)):
                found.append(p.pid)
        self.selected.update(found)
        return found

    def _matches_exec(self, ev: ExecEvent) -> bool:
        assert self._match is not None
        return self._match(_name(ev.comm)) or self._match(os.path.basename(_name(ev.filename)))

    def _about_selected(self, ev: Event) -> bool:
        """Track selection and say whether the event is about a selected task."""
        sel = self.selected
        if isinstance(ev, ExecEvent):
            if not ev.errno and self._match is not None and self._matches_exec(ev):
                sel.add(ev.tgid)
            return ev.tgid in sel
        if isinstance(ev, ForkEvent):
            about = ev.tgid in sel or ev.pid in sel
            if about and self.spec.follow:
                sel.add(ev.child_pid)
            return about
        if isinstance(ev, ExitEvent):
            about = ev.tgid in sel or ev.pid in sel
            if not ev.process_exit and ev.pid != ev.tgid:
                sel.discard(ev.pid)
            return about
        if isinstance(ev, SignalEvent):
            if ev.stage == SIGNAL_GENERATE:
                return ev.tgid in sel or ev.target_pid in sel
            return ev.tgid in sel
        if isinstance(ev, SignalSummaryEvent):
            # Like the signals it counts: about its sender (or receiver) or its target.
            return ev.tgid in sel or ev.target_pid in sel
        if isinstance(ev, ReapEvent):
            about = ev.tgid in sel or ev.reaped_pid in sel
            sel.discard(ev.reaped_pid)
            return about
        return False

    def _shown(self, ev: Event) -> bool:
        spec = self.spec
        if ev.kind not in spec.kinds:
            return False
        if spec.uids and ev.uid not in spec.uids:
            return False
        if self._exclude is not None and self._exclude(_name(ev.comm)):
            return False
        if spec.no_threads:
            if isinstance(ev, ForkEvent) and ev.thread:
                return False
            if isinstance(ev, ExitEvent) and not ev.process_exit:
                return False
        return True

    def __call__(self, events: list[Event]) -> list[Event]:
        if not self.spec.selects:
            return [ev for ev in events if self._shown(ev)]
        about = self._about_selected
        shown = self._shown
        # Selection state must see every event, shown or not.
        return [ev for ev in events if about(ev) and shown(ev)]
