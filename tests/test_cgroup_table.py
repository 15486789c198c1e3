"""The cgroup table: finding the unified hierarchy, scanning it (a temporary
directory tree stands in for it: a directory's inode number is its id, as
kernfs makes it), keeping it true from cgroup events, and rebuilding it from a
recording; and the pipeline step that names exec contexts' cgroups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from proctrace.model.cgroup_context import CgroupContextStep
from proctrace.model.cgroups import (
    REMOVED_KEPT,
    CgroupTable,
    ancestry,
    container_in_path,
    container_prefix,
    normalize_path,
    parse_unified_mount,
    relative_path,
    unified_mount,
    unit_name,
)
from proctrace.model.context import ProcessContext
from proctrace.model.events import CgroupEvent, ExecEvent

HYBRID_MOUNTS = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
PURE_V2_MOUNTS = """sysfs /sys sysfs rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
"""
V1_ONLY_MOUNTS = "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
DOCKER = b"3f2a9c1b7d04" + b"0" * 52


@pytest.mark.parametrize(
    ("mounts", "expected"),
    [
        (HYBRID_MOUNTS, "/sys/fs/cgroup/unified"),
        (PURE_V2_MOUNTS, "/sys/fs/cgroup"),
        (V1_ONLY_MOUNTS, None),
        ("", None),
        ("cgroup2 /mnt/my\\040cgroups cgroup2 rw 0 0\n", "/mnt/my cgroups"),  # a space, octal-escaped
    ],
)
def test_the_unified_hierarchy_is_found_in_the_mount_table(mounts: str, expected: str | None) -> None:
    assert parse_unified_mount(mounts) == expected


def test_a_missing_mount_table_means_no_hierarchy(tmp_path: Path) -> None:
    assert unified_mount(tmp_path / "mounts") is None
    table = CgroupTable.discover(tmp_path / "mounts")
    assert (table.mount, table.live, len(table)) == (None, False, 0)


@pytest.mark.parametrize(
    ("text", "mount", "expected"),
    [
        ("/system.slice/x.service", "/sys/fs/cgroup/unified", b"/system.slice/x.service"),
        ("/sys/fs/cgroup/unified/system.slice/x.service/", "/sys/fs/cgroup/unified", b"/system.slice/x.service"),
        ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified", b"/"),
        ("/sys/fs/cgroup/system.slice", "/sys/fs/cgroup", b"/system.slice"),
        ("/sys/fs/cgroupies/a", "/sys/fs/cgroup", b"/sys/fs/cgroupies/a"),  # not under the mount
        ("//a//b/", None, b"/a/b"),
    ],
)
def test_a_cgroup_the_user_names_becomes_a_path_in_the_hierarchy(text: str, mount: str | None, expected: bytes) -> None:
    assert relative_path(text, mount) == expected


def test_path_rules() -> None:
    assert normalize_path(b"") == b"/"
    assert ancestry(b"/a/b") == [b"/a/b", b"/a", b"/"]
    assert unit_name(b"nginx") == b"nginx.service"
    assert unit_name(b"user.slice") == b"user.slice"
    assert unit_name(b"session-2.scope") == b"session-2.scope"
    assert container_prefix(" 3F2A ") == b"3f2a"
    for bad in ("", "xyz", "0" * 65, "3f-2a"):
        with pytest.raises(ValueError):
            container_prefix(bad)
    nested = b"/system.slice/docker-" + DOCKER + b".scope/inner/" + b"e" * 64
    assert container_in_path(nested, (b"3f2a",))  # the outer container's
    assert container_in_path(nested, (b"eee",))  # the inner one's
    assert not container_in_path(nested, (b"3f2b",))


def make_hierarchy(root: Path) -> dict[bytes, int]:
    for rel in ("system.slice/cron.service", "system.slice/nginx.service", "user.slice/user-1000.slice"):
        (root / rel).mkdir(parents=True)
    (root / "cgroup.procs").write_text("")  # files are not cgroups
    return {
        normalize_path(os.fsencode(str(p.relative_to(root)))) if p != root else b"/": p.stat().st_ino
        for p in [root, *root.rglob("*")]
        if p.is_dir()
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_scan_maps_every_directory_inode_to_its_path(tmp_path: Path) -> None:
    expected = make_hierarchy(tmp_path)
    table = CgroupTable(str(tmp_path), live=True)
    table.scan()
    assert {table.path_of(i): i for i in expected.values()} == expected
    assert table.id_of(b"/system.slice/cron.service") == expected[b"/system.slice/cron.service"]
    cron = expected[b"/system.slice/cron.service"]
    assert table.ancestors(cron) == [cron, expected[b"/system.slice"], expected[b"/"]]
    assert table.to_list()[0] == {"id": expected[b"/"], "path": "/"}
    assert len(table) == len(expected) == 6  # the root, two slices, three below them


def test_an_unknown_id_rescans_at_most_once_a_second_and_only_live(tmp_path: Path) -> None:
    make_hierarchy(tmp_path)
    clock = FakeClock()
    table = CgroupTable(str(tmp_path), live=True, clock=clock)
    table.scan()
    late = tmp_path / "late.scope"
    late.mkdir()
    late_id = late.stat().st_ino
    clock.now += 0.5
    assert table.path_of(late_id) is None and table.scans == 1  # too soon after the last scan
    clock.now += 0.6
    assert table.path_of(late_id) == b"/late.scope" and table.scans == 2
    assert table.path_of(10**12) is None and table.scans == 2  # throttled again
    replayed = CgroupTable.from_list(table.to_list(), str(tmp_path))
    (tmp_path / "later.scope").mkdir()
    clock.now += 5
    assert replayed.path_of((tmp_path / "later.scope").stat().st_ino) is None
    assert replayed.scans == 0  # a recording's table never reads the machine


def test_a_rescan_marks_what_vanished_as_removed_but_keeps_its_path(tmp_path: Path) -> None:
    ids = make_hierarchy(tmp_path)
    table = CgroupTable(str(tmp_path), live=True)
    table.scan()
    (tmp_path / "system.slice/cron.service").rmdir()
    table.scan()
    cron = ids[b"/system.slice/cron.service"]
    assert table.path_of(cron) == b"/system.slice/cron.service"
    assert table.id_of(b"/system.slice/cron.service") is None
    assert {"id": cron, "path": "/system.slice/cron.service"} not in table.to_list()


def test_cgroup_events_keep_the_table_true() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}, {"id": 2, "path": "/a"}, {"id": 3, "path": "/a/b"}])
    table.apply("mkdir", 4, b"/a/b/c")
    assert table.ancestors(4) == [4, 3, 2, 1]
    # A rename moves the descendants' paths; ids and parents stay.
    table.apply("rename", 3, b"/a/renamed")
    assert (table.path_of(3), table.path_of(4)) == (b"/a/renamed", b"/a/renamed/c")
    assert table.id_of(b"/a/b") is None and table.id_of(b"/a/renamed/c") == 4
    assert table.ancestors(4) == [4, 3, 2, 1]
    # rmdir: the path stays for events still in flight, but nothing lives there now.
    table.apply("rmdir", 4, b"/a/renamed/c")
    assert table.path_of(4) == b"/a/renamed/c" and table.id_of(b"/a/renamed/c") is None
    table.apply("mkdir", 5, b"/a/renamed/c")  # made again: a new id
    assert table.id_of(b"/a/renamed/c") == 5 and table.path_of(4) == b"/a/renamed/c"
    # One made and removed before anyone saw it still names its events.
    table.apply("rmdir", 6, b"/brief")
    assert table.path_of(6) == b"/brief" and table.id_of(b"/brief") is None
    with pytest.raises(ValueError, match="unknown cgroup action"):
        table.apply("chmod", 1, b"/")


def test_a_mkdir_at_a_path_whose_rmdir_was_missed_takes_it_over() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}, {"id": 2, "path": "/job"}])
    table.apply("mkdir", 9, b"/job")
    assert table.id_of(b"/job") == 9 and table.path_of(2) == b"/job"
    assert [e["id"] for e in table.to_list()] == [1, 9]


def test_removed_cgroups_are_forgotten_oldest_first_beyond_a_bound() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}])
    for i in range(REMOVED_KEPT + 2):
        table.apply("mkdir", 100 + i, b"/c%d" % i)
        table.apply("rmdir", 100 + i, b"/c%d" % i)
    assert table.path_of(100) is None and table.path_of(101) is None
    assert table.path_of(102) == b"/c2"
    assert table.path_of(1) == b"/"  # live cgroups are never forgotten


def test_learning_from_an_exec_takes_only_an_id_the_table_does_not_know() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}, {"id": 2, "path": "/a"}])
    table.learn(2, b"/stale")
    table.learn(7, b"/a/new")
    table.learn(0, b"/unknown")
    assert (table.path_of(2), table.path_of(7), table.ancestors(7)) == (b"/a", b"/a/new", [7, 2, 1])
    assert table.path_of(0) is None


def test_the_table_round_trips_through_a_recording_header_and_refuses_bad_entries() -> None:
    table = CgroupTable.from_list([{"id": 3, "path": "/a/b\udcff"}, {"id": 1, "path": "/"}, {"id": 2, "path": "/a"}])
    assert table.path_of(3) == b"/a/b\xff"
    assert CgroupTable.from_list(table.to_list()).to_list() == table.to_list()
    assert [e["id"] for e in table.to_list()] == [1, 2, 3]  # parents first
    for bad in ([{"id": "1", "path": "/"}], [{"id": 1}], ["/"], [{"id": True, "path": "/"}]):
        with pytest.raises(ValueError, match="cgroup entry"):
            CgroupTable.from_list(bad)


# --- the pipeline step -------------------------------------------------------------------


def _exec(cgroup_id: int, cgroup: bytes | None, ts: int) -> ExecEvent:
    return ExecEvent(
        ts,
        50,
        50,
        1,
        0,
        b"sh",
        5,
        0,
        b"/bin/sh",
        [b"sh"],
        context=ProcessContext(cwd=b"/", cgroup=cgroup),
        cgroup_id=cgroup_id,
    )


def cgroup_event(action: str, target: int, path: bytes, ts: int = 5) -> CgroupEvent:
    return CgroupEvent(ts, 1, 1, 0, 0, b"systemd", 1, 0, action=action, target_id=target, path=path)


def test_live_the_step_names_an_exec_cgroup_from_the_table_and_cgroup_events_before_it() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}])
    step = CgroupContextStep(table, resolve=True)
    made = cgroup_event("mkdir", 40, b"/job.scope")
    in_job, unknown, failed = _exec(40, None, 6), _exec(41, None, 7), _exec(40, None, 8)
    failed.context = None
    assert step([made, in_job, unknown, failed]) == [made, in_job, unknown, failed]
    assert in_job.context is not None and in_job.context.cgroup == b"/job.scope"
    assert unknown.context is not None and unknown.context.cgroup is None and step.unresolved == 1
    assert failed.context is None


def test_on_replay_the_step_learns_from_recorded_paths_and_never_rewrites_them() -> None:
    table = CgroupTable.from_list([{"id": 1, "path": "/"}])
    step = CgroupContextStep(table, resolve=False)
    recorded, unnamed = _exec(40, b"/job.scope", 6), _exec(41, None, 7)
    table.apply("mkdir", 41, b"/other.scope")
    step([recorded, unnamed])
    assert table.path_of(40) == b"/job.scope"
    assert unnamed.context is not None and unnamed.context.cgroup is None
