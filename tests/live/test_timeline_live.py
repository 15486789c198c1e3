"""The process table fed by a real trace: a known family of processes comes out
exactly as the workload built it (tests/workloads/family.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from proctrace.formats.jsonl import event_from_dict
from proctrace.formats.views import render_summary, render_tree, timeline_json
from proctrace.model.process_table import ProcessTable

from tests.live.conftest import ROOT, Trace, run_proctrace, workload

pytestmark = pytest.mark.live


def table_of(trace: Trace) -> ProcessTable:
    table = ProcessTable()
    for record in trace.events:
        if record["type"] == "lost":
            table.lost(record["ts_ns"], record["count"], record["total"])
        else:
            table.write([event_from_dict(record)])
    return table


@pytest.fixture(scope="module", params=["ring", "perf"])
def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, int], ProcessTable]:
    # The perf buffer delivers events out of order across CPUs: the same facts must come out.
    t = run_proctrace(tmp_path_factory.mktemp("family"), workload("family.py"), "--buffer", request.param)
    assert t.returncode == 0, t.stderr
    pids = json.loads(t.stdout.strip().splitlines()[-1])
    return pids, table_of(t)


@pytest.fixture(scope="module")
def objs(family) -> dict[str, dict[str, Any]]:
    pids, table = family
    by_pid = {d["pid"]: d for d in timeline_json(table, None, roots=[pids["top"]])}
    assert sorted(by_pid) == sorted(pids.values()), "one object per process of the family, and no other"
    return {name: by_pid[pid] for name, pid in pids.items()}


def test_every_process_is_complete_and_new(objs):
    for name, obj in objs.items():
        assert not obj["incomplete"] and not obj["pre_existing"], name
        assert obj["end_ns"] is not None and obj["reaped_ns"] is not None, name


def test_top_process_exec_and_children(objs, family):
    pids, _ = family
    top = objs["top"]
    (ex,) = top["execs"]
    assert ex["argv"][1:] == [str(workload("family.py")[1])]
    assert top["exit_code"] == 0 and top["signal"] is None
    assert top["children"] == [pids[n] for n in ("exec", "zombie", "orphaner", "threads")]


def test_exec_child_has_its_argv_and_exit(objs, family):
    pids, _ = family
    child = objs["exec"]
    assert child["ppid"] == pids["top"] and child["forked_by"] == pids["top"]
    assert [(e["filename"], e["argv"]) for e in child["execs"]] == [("/bin/true", ["true", "exec-arg", "two words"])]
    assert (child["exit_code"], child["signal"], child["core_dumped"], child["reaper"]) == (0, None, False, pids["top"])
    assert child["execs"][0]["ts_ns"] > child["start_ns"]


def test_zombie_waits_half_a_second_to_be_reaped(objs, family):
    pids, _ = family
    zombie = objs["zombie"]
    assert (zombie["exit_code"], zombie["execs"], zombie["reaper"]) == (3, [], pids["top"])
    assert 0.5e9 <= zombie["zombie_ns"] < 1.5e9
    assert zombie["zombie_ns"] == zombie["reaped_ns"] - zombie["end_ns"]


def test_orphan_is_adopted_by_the_subreaper_when_its_parent_exits(objs, family):
    pids, _ = family
    orphan, orphaner = objs["grandchild"], objs["orphaner"]
    assert orphaner["children"] == [pids["grandchild"]] and orphaner["exit_code"] == 0
    assert (orphan["original_ppid"], orphan["ppid"], orphan["adopted_by"]) == (
        pids["orphaner"],
        pids["top"],
        pids["top"],
    )
    assert orphan["adopted_ns"] == orphaner["end_ns"]
    assert (orphan["exit_code"], orphan["reaper"]) == (5, pids["top"])
    assert orphan["lifetime_ns"] >= 0.3e9


def test_threads_are_folded_into_their_process(objs):
    threaded = objs["threads"]
    assert (threaded["threads"], threaded["threads_created"], threaded["exit_code"]) == (3, 3, 0)


def test_tree_and_summary_show_the_same_facts(family):
    pids, table = family
    out = io.StringIO()
    render_tree(table, out, False, [pids["top"]], width=200)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    line_of = {}
    for pid in pids.values():
        (line,) = [line for line in lines if re.match(rf"[│├└─ ]*{pid} ", line)]
        line_of[pid] = line
    assert "true exec-arg 'two words'" in line_of[pids["exec"]] and "exit 0" in line_of[pids["exec"]]
    assert "exit 3" in line_of[pids["zombie"]]
    # Its outcome, then what it used (read by the kernel at its exit), then who adopted it.
    assert re.search(rf"exit 5  cpu \S+, peak \S+ \S+  \(adopted by {pids['top']}\)", line_of[pids["grandchild"]]), (
        line_of[pids["grandchild"]]
    )
    assert "(3 threads)" in line_of[pids["threads"]]
    assert lines.index(line_of[pids["grandchild"]]) == lines.index(line_of[pids["orphaner"]]) + 1
    out = io.StringIO()
    render_summary(table, out, False, table.lost_by_class, width=200)
    assert "2 non-zero exits, 0 deaths by signal, 0 failed execs" in out.getvalue()


def test_cli_timeline_json_gives_one_correct_object_per_process(tmp_path):
    """The issue's acceptance run: `proctrace --timeline --json -- python3 family.py`."""
    out = tmp_path / "timeline.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "proctrace", "--timeline", "--json", "-o", str(out), "--", *workload("family.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    pids = json.loads(run.stdout.strip().splitlines()[-1])  # the workload's own output
    by_pid = {d["pid"]: d for d in map(json.loads, out.read_text().splitlines())}
    assert sorted(by_pid) == sorted(pids.values())
    assert by_pid[pids["top"]]["pre_existing"] is False
    assert by_pid[pids["exec"]]["execs"][0]["argv"] == ["true", "exec-arg", "two words"]
    assert 0.5e9 <= by_pid[pids["zombie"]]["zombie_ns"] < 1.5e9
    orphan = by_pid[pids["grandchild"]]
    assert (orphan["original_ppid"], orphan["adopted_by"], orphan["reaper"]) == (
        pids["orphaner"],
        pids["top"],
        pids["top"],
    )
    assert by_pid[pids["threads"]]["threads"] == 3
