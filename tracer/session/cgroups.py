"""The session's cgroup table and the step that keeps it true, for live
tracing and replay alike: where each comes from is the only difference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from proctrace.formats.recording import Recording, RecordingError
from proctrace.formats.recording_set import RecordingSet
from proctrace.model.cgroup_context import CgroupContextStep
from proctrace.model.cgroups import CgroupTable
from proctrace.model.events import CGROUP_RMDIR, CgroupEvent, Event
from proctrace.model.filters import FilterSpec, KernelCgroupRule
from proctrace.session.loop import Source, SourceRecord

if TYPE_CHECKING:
    from proctrace.kernel.probe import Probe

Step = Callable[[list[Event]], list[Event]]

# The recording header's keys: the table at start (CgroupTable.to_list) and
# where the hierarchy was mounted, so that a --cgroup given as a directory
# under the mount point means on replay what it meant live.
HEADER_CGROUPS = "cgroups"
HEADER_CGROUP_MOUNT = "cgroup_mount"


class SteppedSource:
    """A source whose batches go through `step` before anything else sees them."""

    def __init__(self, source: Source, step: Step) -> None:
        self.source = source
        self.step = step

    def records(self, shows_status: bool) -> Iterator[SourceRecord]:
        step = self.step
        for record in self.source.records(shows_status):
            yield step(record) if type(record) is list else record


def add_to_header(header: dict[str, Any], table: CgroupTable) -> None:
    header[HEADER_CGROUPS] = table.to_list()
    header[HEADER_CGROUP_MOUNT] = table.mount


def table_of_recording(recording: Recording | RecordingSet) -> CgroupTable:
    """The table a recording started with; empty for one made before cgroups were
    recorded. The replay step completes it from the cgroup and exec events."""
    header = recording.header
    entries = header.get(HEADER_CGROUPS, [])
    mount = header.get(HEADER_CGROUP_MOUNT)
    if not isinstance(entries, list) or not (mount is None or isinstance(mount, str)):
        raise RecordingError(f"{recording.path}: line 1: invalid header: cgroups must be a list, cgroup_mount a string")
    try:
        return CgroupTable.from_list(entries, mount)
    except ValueError as exc:
        raise RecordingError(f"{recording.path}: line 1: invalid header: {exc}") from None


class KernelCgroupDecisions:
    """Live with a cgroup filter: after the table has taken a batch's cgroup
    events, tell the kernel whether each cgroup made or renamed is selected
    (until then the programs send what runs in it; bpf/proctrace.bpf.c,
    cgroup_verdicts)."""

    def __init__(self, step: CgroupContextStep, probe: Probe, selects: KernelCgroupRule) -> None:
        self.step = step
        self.probe = probe
        self.selects = selects

    def __call__(self, batch: list[Event]) -> list[Event]:
        batch = self.step(batch)
        for ev in batch:
            if type(ev) is CgroupEvent and ev.action != CGROUP_RMDIR:
                self.probe.decide_cgroup(ev.target_id, self.selects(ev.target_id))
        return batch


def live_step(table: CgroupTable, probe: Probe | None = None, spec: FilterSpec | None = None) -> Step:
    """The live step; with a cgroup filter in `spec`, one that also keeps the kernel's selection."""
    step = CgroupContextStep(table, resolve=True)
    if probe is not None and spec is not None and spec.by_cgroup:
        return KernelCgroupDecisions(step, probe, KernelCgroupRule(spec, table))
    return step


def replay_step(table: CgroupTable) -> CgroupContextStep:
    return CgroupContextStep(table, resolve=False)
