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

The cgroup filters (--cgroup, --unit, --container) restrict whatever the rest
selects. A process is *in* when an event from it carries a cgroup id whose
cgroup matches (CgroupMembership); events about another process (a signal's
target, a reaped child) count by that process's membership, kept like the
selected set. The kernel matches a task's cgroup and its ancestors by id
(bpf_get_current_ancestor_cgroup_id) and, for cgroups made while tracing, the
new cgroup's name: a superset of what this module keeps, as above.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from proctrace.model.cgroups import (
    CgroupTable,
    ancestry,
    components,
    container_in_path,
    container_prefix,
    normalize_path,
    relative_path,
    unit_name,
)
from proctrace.model.events import (
    EVENT_KINDS,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
)
from proctrace.model.procsnap import ProcInfo
from proctrace.model.text import as_text

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
    # --cgroup PATH (a cgroup and its descendants), --unit NAME, --container ID:
    # any of the values of one option, and every option given (AND).
    cgroups: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()

    @property
    def selects(self) -> bool:
        """Whether only some processes are selected (else every process is)."""
        return bool(self.comms or self.pids)

    @property
    def by_cgroup(self) -> bool:
        """Whether processes are restricted to some cgroups (--cgroup, --unit, --container)."""
        return bool(self.cgroups or self.units or self.containers)

    def unit_names(self) -> tuple[bytes, ...]:
        """The --unit names as cgroup components: "nginx" is "nginx.service"."""
        return tuple(sorted({unit_name(u.encode()) for u in self.units}))

    def container_prefixes(self) -> tuple[bytes, ...]:
        """The --container prefixes, checked and lower-cased; FilterError for a bad one."""
        try:
            return tuple(sorted({container_prefix(c) for c in self.containers}))
        except ValueError as exc:
            raise FilterError(str(exc)) from None

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
            "cgroup": list(self.cgroups),
            "unit": list(self.units),
            "container": list(self.containers),
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


class CgroupMembership:
    """Which cgroups, and so which processes, the cgroup filters of a spec let
    through, by a CgroupTable that the pipeline keeps true before the filter
    runs (tracer/model/cgroup_context.py).

    --cgroup PATH selects the cgroup at PATH and everything below it, by id:
    a cgroup made later under it is in, and a rename moves nothing out. A PATH
    the table does not know (replaying a recording made without the filter)
    is taken by id when a cgroup is made there. --unit and --container match
    any component of the path, so a cgroup inside the unit or container is in.
    """

    def __init__(self, spec: FilterSpec, table: CgroupTable) -> None:
        self.table = table
        self.units = frozenset(spec.unit_names())
        self.containers = spec.container_prefixes()
        paths = {relative_path(p, table.mount) for p in spec.cgroups}
        self.by_path = bool(paths)
        self.roots = {cid for cid in map(table.id_of, paths) if cid is not None}
        self.unresolved = {p for p in paths if table.id_of(p) is None}
        # Task and process ids of processes in a matching cgroup.
        self.members: set[int] = set()
        self._verdicts: dict[int, bool] = {}
        self._generation = table.generation
        self._root_paths = self._current_root_paths()

    def _current_root_paths(self) -> set[bytes]:
        found = (self.table.path_of(r) for r in self.roots) if self.roots else ()
        return {p for p in found if p is not None} | self.unresolved

    def path_matches(self, path: bytes, cgroup_id: int | None = None) -> bool:
        """Whether the cgroup at `path` (with this id, when known) matches every option given."""
        if self.units and not self.units.intersection(components(path)):
            return False
        if self.containers and not container_in_path(path, self.containers):
            return False
        if self.by_path:
            # By id where the ancestry is known (true across renames and
            # removals), by path otherwise (a cgroup the table learnt of late).
            ids = self.table.ancestors(cgroup_id) if cgroup_id else []
            if not self.roots.intersection(ids) and self._root_paths.isdisjoint(ancestry(path)):
                return False
        return True

    def cgroup_in(self, cgroup_id: int) -> bool | None:
        """Whether the cgroup with this id matches; None when the table does
        not know it (then a process keeps the membership it had)."""
        if self._generation != self.table.generation:
            self._verdicts.clear()
            self._generation = self.table.generation
            self._root_paths = self._current_root_paths()
        verdict = self._verdicts.get(cgroup_id)
        if verdict is None:
            path = self.table.path_of(cgroup_id)  # live: may rescan, and so change the generation
            if path is None:
                return None
            verdict = self._verdicts[cgroup_id] = self.path_matches(path, cgroup_id)
        return verdict

    def cgroup_made(self, ev: CgroupEvent) -> None:
        """A --cgroup PATH the table did not know is the cgroup made there."""
        if ev.action == "mkdir" and self.unresolved:
            # The event's own path: the table may be ahead of it already (the
            # step applied the whole batch, a rename after the mkdir included).
            path = normalize_path(ev.path)
            if path in self.unresolved:
                self.unresolved.discard(path)
                self.roots.add(ev.target_id)
                self._generation = -1  # recompute the verdicts and root paths

    def seed(self, snapshot: Iterable[ProcInfo]) -> None:
        """The processes that were running at start in a matching cgroup (their /proc context)."""
        for p in snapshot:
            path = None if p.context is None else p.context.cgroup
            if path is None:
                continue
            cgroup_id = self.table.id_of(path)
            verdict = self.cgroup_in(cgroup_id) if cgroup_id is not None else None
            if verdict is None:
                verdict = self.path_matches(path)
            if verdict:
                self.members.add(p.pid)

    def from_process(self, ev: Event) -> bool:
        """Whether the task an event came from is in, updating its membership
        (a process can move between cgroups)."""
        members = self.members
        verdict = self.cgroup_in(ev.cgroup_id) if ev.cgroup_id else None
        if verdict is None:
            return ev.tgid in members or ev.pid in members
        if verdict:
            members.add(ev.tgid)
            members.add(ev.pid)
        else:
            members.discard(ev.tgid)
            members.discard(ev.pid)
        return verdict

    def about(self, ev: Event) -> bool:
        """Whether the event is about a process in a matching cgroup (or, for a
        cgroup event, about a matching cgroup). Sees every event, shown or not."""
        members = self.members
        inside = self.from_process(ev)
        if isinstance(ev, ForkEvent):
            # The child starts in its parent's cgroup; its own events correct that.
            if inside:
                members.add(ev.child_pid)
            else:
                members.discard(ev.child_pid)
            return inside
        if isinstance(ev, ExitEvent):
            if not ev.process_exit and ev.pid != ev.tgid:
                members.discard(ev.pid)
            return inside
        if isinstance(ev, SignalEvent):
            return inside or (ev.stage == SIGNAL_GENERATE and ev.target_pid in members)
        if isinstance(ev, SignalSummaryEvent):
            return inside or ev.target_pid in members
        if isinstance(ev, ReapEvent):
            about = inside or ev.reaped_pid in members
            members.discard(ev.reaped_pid)
            return about
        if isinstance(ev, CgroupEvent):
            self.cgroup_made(ev)
            return inside or bool(self.cgroup_in(ev.target_id))
        return inside


class EventFilter:
    """Applies a FilterSpec to a stream of events in timestamp order.

    `cgroups` is the table the cgroup filters look paths up in (the session's,
    kept true by the pipeline); without one, an empty table."""

    def __init__(self, spec: FilterSpec, cgroups: CgroupTable | None = None) -> None:
        self.spec = spec
        self._match = name_matcher(spec.comms, spec.regex) if spec.comms else None
        self._exclude = name_matcher(spec.exclude, spec.regex) if spec.exclude else None
        # Task ids and process ids, as the kernel's `followed` map holds them.
        self.selected: set[int] = set(spec.pids)
        self.cgroups: CgroupMembership | None = None
        if spec.by_cgroup:
            self.cgroups = CgroupMembership(spec, cgroups if cgroups is not None else CgroupTable())

    def seed(self, snapshot: Iterable[ProcInfo]) -> list[int]:
        """Select the processes that existed at start with a matching name
        (returns their pids), and those in a matching cgroup."""
        snapshot = list(snapshot)
        if self.cgroups is not None:
            self.cgroups.seed(snapshot)
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
        if isinstance(ev, (CredEvent, CgroupEvent)):
            return ev.tgid in sel  # the task that changed its credentials, or made the cgroup
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
        shown = self._shown
        cgroups = self.cgroups
        if cgroups is not None:
            in_cgroup = cgroups.about
            if self.spec.selects:
                about = self._about_selected
                # Both states must see every event: no short-circuit between them.
                return [ev for ev in events if (about(ev) & in_cgroup(ev)) and shown(ev)]
            return [ev for ev in events if in_cgroup(ev) and shown(ev)]
        if not self.spec.selects:
            return [ev for ev in events if shown(ev)]
        about = self._about_selected
        # Selection state must see every event, shown or not.
        return [ev for ev in events if about(ev) and shown(ev)]


class KernelCgroupRule:
    """Whether the kernel lets a cgroup through: any one option's match (the
    kernel ORs them, user space ANDs: more, never less). The kernel asks of
    every cgroup made or renamed during the session (bpf/proctrace.bpf.c,
    cgroup_verdicts), and of those there at start through
    kernel_cgroup_selection."""

    def __init__(self, spec: FilterSpec, table: CgroupTable) -> None:
        self.table = table
        self.units = frozenset(spec.unit_names())
        self.prefixes = spec.container_prefixes()
        self.roots = {table.id_of(relative_path(p, table.mount)) for p in spec.cgroups} - {None}

    def __call__(self, cgroup_id: int) -> bool:
        path = self.table.path_of(cgroup_id)
        if path is None:
            return True  # unknown: let it through, user space decides per event
        return bool(
            (self.units and self.units.intersection(components(path)))
            or (self.prefixes and container_in_path(path, self.prefixes))
            or self.roots.intersection(self.table.ancestors(cgroup_id))
        )


def kernel_cgroup_selection(spec: FilterSpec, table: CgroupTable) -> frozenset[int]:
    """The cgroups the kernel selects at start, from a freshly scanned table (a
    task is in when its cgroup or an ancestor is among them)."""
    if not spec.by_cgroup:
        return frozenset()
    selects = KernelCgroupRule(spec, table)
    return frozenset(entry["id"] for entry in table.to_list() if selects(entry["id"]))


def check_cgroup_paths(spec: FilterSpec, table: CgroupTable) -> None:
    """Live, a --cgroup PATH must name a cgroup now, and there must be a
    unified hierarchy to name it in: FilterError says which is missing."""
    if not spec.by_cgroup:
        return
    if table.mount is None:
        raise FilterError(
            "--cgroup, --unit and --container need the unified cgroup (v2) hierarchy, "
            "and no cgroup2 file system is mounted here (see /proc/self/mounts)"
        )
    for text in spec.cgroups:
        path = relative_path(text, table.mount)
        if table.id_of(path) is None:
            where = os.path.join(table.mount, as_text(path).lstrip("/"))
            raise FilterError(f"--cgroup {text}: no such cgroup ({where} does not exist)")
