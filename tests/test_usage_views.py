"""What processes used and what killed them, in the tree, the summary and
--timeline --json: a make-like tree whose exits carry known usage."""

from __future__ import annotations

import io
import json

from proctrace.formats.views import render_summary, render_timeline, render_tree, timeline_json
from proctrace.model.events import ResourceUsage, wait_status
from proctrace.model.process_table import ProcessTable

from tests.synthetic import MS, SHELL, execve, exit_, fork, reap

MAKE, CC1, CC2, VICTIM = 200, 201, 202, 203
MAKE_START = 1 * MS - 5_000  # a task starts just before its fork is reported


def used(cpu_ms: int, rss_mb: int, read: int | None = 0) -> ResourceUsage:
    return ResourceUsage(cpu_ms * MS * 3 // 4, cpu_ms * MS // 4, rss_mb * 1024, 10, 0, 1, 1, read, 0)


READS = {CC1: 4096, CC2: 1 << 20}  # the second compiler read more than the first


def session() -> list:
    """make forks two compilers (300 ms and 100 ms of CPU, 200 and 50 MiB) and a
    victim the OOM killer takes, then one a process kills with SIGTERM."""
    events = [
        fork(1 * MS, MAKE),
        execve(2 * MS, MAKE, MAKE_START, [b"make", b"-j2"], ppid=SHELL),
    ]
    t = 3 * MS
    for child, cpu, rss in ((CC1, 300, 200), (CC2, 100, 50)):
        start = t - 5_000
        events += [
            fork(t, child, by=MAKE, start=MAKE_START, ppid=SHELL),
            execve(t + 1 * MS, child, start, [b"cc1", b"x.c"], ppid=MAKE),
        ]
        ex = exit_(t + 400 * MS, child, start, ppid=MAKE, comm=b"cc1")
        ex.usage = used(cpu, rss, READS[child])
        events += [ex, reap(t + 401 * MS, child, by=MAKE, start=MAKE_START)]
        t += 500 * MS
    start = t - 5_000
    events += [fork(t, VICTIM, by=MAKE, start=MAKE_START, ppid=SHELL)]
    oom = exit_(t + 5 * MS, VICTIM, start, wait_status(9), ppid=MAKE, comm=b"make")
    oom.usage, oom.oom_killed, oom.oom_memcg = used(5, 300, None), True, b"/build"
    events += [oom, reap(t + 6 * MS, VICTIM, wait_status(9), by=MAKE, start=MAKE_START)]
    end = exit_(t + 10 * MS, MAKE, MAKE_START, wait_status(15), ppid=SHELL, comm=b"make")
    end.usage, end.killed_by_pid, end.killed_by_comm = used(20, 10), 4242, b"systemd"
    events.append(end)
    return events


def table() -> ProcessTable:
    t = ProcessTable()
    t.write(session())
    return t


def test_the_tree_shows_each_processs_cpu_and_peak_and_its_subtrees_cpu() -> None:
    out = io.StringIO()
    render_tree(table(), out, False, width=200)
    text = out.getvalue()
    cc1 = next(line for line in text.splitlines() if f"{CC1} cc1" in line)
    assert "cpu 300.0ms, peak 200.0 MiB" in cc1
    top = next(line for line in text.splitlines() if f"{MAKE} make" in line)
    # its own 20 ms and its three children's 300 + 100 + 5 ms
    assert "cpu 20.0ms, peak 10.0 MiB" in top and "(subtree cpu 425.0ms)" in top
    assert "killed by SIGTERM from 4242 (systemd)" in top
    victim = next(line for line in text.splitlines() if f"{VICTIM} " in line)
    assert "killed by the OOM killer in memory cgroup /build (SIGKILL)" in victim


def test_the_summary_ranks_consumers_and_says_who_killed_whom() -> None:
    out = io.StringIO()
    render_summary(table(), out, False, {}, width=200)
    text = out.getvalue()
    consumers = text[text.index("Top consumers (CPU)") : text.index("Top consumers (peak RSS)")]
    pids = [int(line.split()[0]) for line in consumers.splitlines() if line[:1].isdigit()]
    assert pids == [CC1, CC2, MAKE, VICTIM]
    # The OOM victim used little CPU but the most memory: it heads the RSS ranking
    by_rss = text[text.index("Top consumers (peak RSS)") : text.index("Top consumers (I/O)")]
    assert [int(line.split()[0]) for line in by_rss.splitlines() if line[:1].isdigit()] == [VICTIM, CC1, CC2, MAKE]
    by_io = text[text.index("Top consumers (I/O)") : text.index("Usage by command")]
    assert [int(line.split()[0]) for line in by_io.splitlines() if line[:1].isdigit()] == [CC2, CC1]
    by_command = text[text.index("Usage by command") : text.index("Who killed whom")]
    assert any("cc1" in line and "400.0ms" in line and "200.0 MiB" in line for line in by_command.splitlines())
    assert "n/a" in consumers  # the victim's I/O was not known
    assert "1 killed by the OOM killer" in text
    killings = text[text.index("Who killed whom") :]
    assert any(f"{VICTIM} (make)" in line and "the OOM killer" in line for line in killings.splitlines())
    assert any(
        f"{MAKE} (make)" in line and "SIGTERM" in line and "4242 (systemd)" in line for line in killings.splitlines()
    )


def test_timeline_json_carries_the_usage_of_each_process() -> None:
    records = json.loads(json.dumps(timeline_json(table(), None)))
    cc1 = next(r for r in records if r["pid"] == CC1)
    assert (cc1["cpu_user_ns"], cc1["cpu_sys_ns"], cc1["max_rss_kb"]) == (225 * MS, 75 * MS, 200 * 1024)
    shell = next((r for r in records if r["pid"] == SHELL), None)
    assert shell is None or shell["cpu_user_ns"] is None


def test_the_timeline_says_everything_each_process_used_at_its_exit() -> None:
    out = io.StringIO()
    render_timeline(table(), [CC1, VICTIM], out, False)
    text = out.getvalue()
    assert (
        "used cpu 300.0ms (225.0ms user, 75.0ms system), peak RSS 200.0 MiB, page faults 10 minor + 0 major, "
        "context switches 1 voluntary + 1 involuntary, read 4 KiB, wrote 0 B (storage)"
    ) in text
    # The victim's storage I/O was not counted: said so, not shown as zero
    assert "storage I/O not counted by this kernel" in text
    assert "killed by the OOM killer in memory cgroup /build (SIGKILL)" in text


def test_timeline_json_says_what_ended_each_process() -> None:
    records = {r["pid"]: r for r in json.loads(json.dumps(timeline_json(table(), None)))}
    assert (records[VICTIM]["oom_killed"], records[VICTIM]["oom_memcg"]) == (True, "/build")
    assert (records[MAKE]["killed_by_pid"], records[MAKE]["killed_by_comm"]) == (4242, "systemd")
    assert (records[CC1]["oom_killed"], records[CC1]["oom_memcg"], records[CC1]["killed_by_pid"]) == (False, None, None)
