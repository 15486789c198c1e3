"""The critical path on a make-like tree of known durations.

make (0-1000 ms) runs cc1 (10-400) and cc2 (20-300) side by side, then ld
(420-900), then works on alone until 1000. The path: make until cc1 began,
cc1 (the longer compile: what ld waited for), make from cc1's end to ld's
start, ld, make to its end. cc2 ran beside cc1 and is not on it.
"""

from __future__ import annotations

import io

from proctrace.formats.views import render_summary
from proctrace.model.critical_path import critical_path, shares
from proctrace.model.process_table import ProcessTable

from tests.synthetic import MS, SHELL, execve, exit_, fork, reap

MAKE, CC1, CC2, LD = 300, 301, 302, 303
LEAD = 5_000  # a task starts 5 us before its fork is reported


def start_of(forked_ms: int) -> int:
    return forked_ms * MS - LEAD


def make_tree() -> ProcessTable:
    events = [fork(0 * MS + LEAD, MAKE), execve(1 * MS, MAKE, start_of(0) + LEAD, [b"make"])]
    make_start = start_of(0) + LEAD
    steps = [(CC1, 10, 400, b"cc1"), (CC2, 20, 300, b"cc1"), (LD, 420, 900, b"ld")]
    for pid, begin, end, name in steps:
        events += [
            fork(begin * MS, pid, by=MAKE, start=make_start, ppid=SHELL),
            execve(begin * MS + 1, pid, start_of(begin), [name, b"step"], ppid=MAKE),
            exit_(end * MS, pid, start_of(begin), ppid=MAKE, comm=name),
            reap(end * MS + 1, pid, by=MAKE, start=make_start),
        ]
    events.append(exit_(1000 * MS, MAKE, make_start, comm=b"make"))
    events.sort(key=lambda ev: ev.ts_ns)
    table = ProcessTable()
    table.write(events)
    return table


def test_the_path_goes_through_what_was_waited_for_and_covers_the_whole_life() -> None:
    table = make_tree()
    make = next(rec for rec in table.processes() if rec.tgid == MAKE)
    steps = critical_path(make, table.children_index())
    assert [s.process.tgid for s in steps] == [MAKE, CC1, MAKE, LD, MAKE]
    assert [s.end_ns for s in steps[:-1]] == [s.start_ns for s in steps[1:]]  # no gap, no overlap
    assert (steps[0].start_ns, steps[-1].end_ns) == (make.start_ns, make.end_ns)
    time_in = {rec.tgid: ns for rec, ns in shares(steps)}
    assert time_in[CC1] == 400 * MS - start_of(10)
    assert time_in[LD] == 900 * MS - start_of(420)
    assert sum(time_in.values()) == make.end_ns - make.start_ns
    assert CC2 not in time_in


def test_the_summary_prints_each_process_share_of_the_path() -> None:
    out = io.StringIO()
    render_summary(make_tree(), out, False, {}, width=160)
    text = out.getvalue()
    section = text[text.index("Critical path") :]
    rows = [line.split() for line in section.splitlines() if line[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [MAKE, CC1, LD]  # in the order each joins the path
    assert rows[1][-1] == "39.0%" and rows[2][-1] == "48.0%"
    assert str(CC2) not in section
