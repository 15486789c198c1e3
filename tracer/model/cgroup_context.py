"""The pipeline step that keeps a CgroupTable true from the stream and gives
exec contexts their cgroup path.

It runs on every batch before the filters and the sinks, live and on replay,
so that the filters, the stream, the views and the recording all see the same
table and the same paths. The kernel reports only a cgroup's id on an exec;
live, the step names it from the table. On replay the path is in the
recording already, and the step learns the id from it instead: that rebuilds
the table for cgroups whose mkdir the recording does not hold.
"""

from __future__ import annotations

from proctrace.model.cgroups import CgroupTable
from proctrace.model.context import ProcessContext
from proctrace.model.events import CgroupEvent, Event, ExecEvent


class CgroupContextStep:
    """Called with each batch, in stream order; returns the same batch."""

    def __init__(self, table: CgroupTable, resolve: bool) -> None:
        self.table = table
        # Live: fill context.cgroup from the table. Replay: never (the path the
        # live session wrote is the one to show), only learn from it.
        self.resolve = resolve
        self.unresolved = 0  # exec contexts whose cgroup id the table did not know

    def __call__(self, events: list[Event]) -> list[Event]:
        table = self.table
        for ev in events:  # every event of a session: exact types, no isinstance
            kind = type(ev)
            if kind is ExecEvent:
                context = ev.context  # type: ignore[attr-defined]
                if context is not None and ev.cgroup_id:
                    self._exec(ev, context)  # type: ignore[arg-type]
            elif kind is CgroupEvent:
                table.apply(ev.action, ev.target_id, ev.path)  # type: ignore[attr-defined]
        return events

    def _exec(self, ev: ExecEvent, context: ProcessContext) -> None:
        if context.cgroup is not None:
            self.table.learn(ev.cgroup_id, context.cgroup)
        elif self.resolve:
            path = self.table.path_of(ev.cgroup_id)
            if path is None:
                self.unresolved += 1
            else:
                context.cgroup = path  # the event's own context, just decoded (ProcessContext says why)
