"""--cgroup, --unit and --container on synthetic streams: which processes are
in, what the kernel is given, and that a replay filters as live did."""

from __future__ import annotations

from pathlib import Path

import pytest
from proctrace.model.cgroup_context import CgroupContextStep
from proctrace.model.cgroups import CgroupTable
from proctrace.model.context import ProcessContext
from proctrace.model.events import (
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    WaitStatus,
)
from proctrace.model.filters import (
    EventFilter,
    FilterError,
    FilterSpec,
    KernelCgroupRule,
    check_cgroup_paths,
    kernel_cgroup_selection,
)
from proctrace.model.procsnap import ProcInfo

ROOT, SYSTEM, NGINX, CRON, USER, DOCKER_SCOPE = 1, 2, 3, 4, 5, 6
CONTAINER = "3f2a9c1b7d04" + "0" * 52
START = [
    {"id": ROOT, "path": "/"},
    {"id": SYSTEM, "path": "/system.slice"},
    {"id": NGINX, "path": "/system.slice/nginx.service"},
    {"id": CRON, "path": "/system.slice/cron.service"},
    {"id": USER, "path": "/user.slice"},
    {"id": DOCKER_SCOPE, "path": f"/system.slice/docker-{CONTAINER}.scope"},
]
MOUNT = "/sys/fs/cgroup/unified"
_ts = iter(range(1_000, 10**9, 1_000))


def table() -> CgroupTable:
    return CgroupTable.from_list(START, MOUNT)


def base(pid: int, cgroup_id: int, tgid: int | None = None) -> dict[str, object]:
    return {
        "ts_ns": next(_ts),
        "pid": pid,
        "tgid": pid if tgid is None else tgid,
        "ppid": 1,
        "uid": 0,
        "comm": b"sh",
        "start_ns": 0,
        "cpu": 0,
        "cgroup_id": cgroup_id,
    }


def fork(parent: int, child: int, cgroup_id: int) -> ForkEvent:
    return ForkEvent(**base(parent, cgroup_id), child_pid=child, child_tgid=child, child_ppid=parent)  # type: ignore[arg-type]


def exec_(pid: int, cgroup_id: int, name: bytes = b"sh") -> ExecEvent:
    return ExecEvent(**base(pid, cgroup_id), filename=b"/bin/" + name, argv=[name], old_pid=pid)  # type: ignore[arg-type]


def exit_(pid: int, cgroup_id: int) -> ExitEvent:
    return ExitEvent(**base(pid, cgroup_id), status=WaitStatus(0), process_exit=True)  # type: ignore[arg-type]


def reap(reaper: int, reaped: int, cgroup_id: int) -> ReapEvent:
    return ReapEvent(**base(reaper, cgroup_id), reaped_pid=reaped, status=WaitStatus(0))  # type: ignore[arg-type]


def kill(sender: int, target: int, cgroup_id: int, stage: int = SIGNAL_GENERATE) -> SignalEvent:
    return SignalEvent(**base(sender, cgroup_id), stage=stage, signo=15, target_pid=target)  # type: ignore[arg-type]


def made(action: str, target: int, path: bytes, by_cgroup: int = ROOT) -> CgroupEvent:
    return CgroupEvent(**base(1, by_cgroup), action=action, target_id=target, path=path)  # type: ignore[arg-type]


def run(spec: FilterSpec, events: list[Event], snapshot: list[ProcInfo] = ()) -> list[Event]:  # type: ignore[assignment]
    """As a session runs it: the cgroup step keeps the table true, then the filter."""
    cgroups = table()
    f = EventFilter(spec, cgroups)
    f.seed(snapshot)
    step = CgroupContextStep(cgroups, resolve=False)
    return f(step(events))


def test_a_cgroup_and_everything_below_it_including_cgroups_made_later() -> None:
    spec = FilterSpec(cgroups=("/system.slice",))
    events = [
        nginx := exec_(10, NGINX),
        user := exec_(11, USER),
        job := made("mkdir", 40, b"/system.slice/job.scope"),
        in_job := exec_(12, 40),
        deeper := made("mkdir", 41, b"/system.slice/job.scope/inner"),
        in_deeper := exec_(13, 41),
        elsewhere := made("mkdir", 42, b"/user.slice/x.scope"),
        exec_(14, 42),
    ]
    assert run(spec, events) == [nginx, job, in_job, deeper, in_deeper]
    assert user not in run(spec, events) and elsewhere not in run(spec, events)


def test_the_path_may_be_given_as_its_directory_under_the_mount_point() -> None:
    events = [nginx := exec_(10, NGINX), exec_(11, CRON)]
    assert run(FilterSpec(cgroups=(f"{MOUNT}/system.slice/nginx.service",)), events) == [nginx]


def test_a_rename_moves_nothing_in_or_out() -> None:
    spec = FilterSpec(cgroups=("/system.slice/nginx.service",))
    events = [
        made("mkdir", 40, b"/system.slice/nginx.service/worker"),
        rename := made("rename", NGINX, b"/system.slice/nginx-old.service"),
        worker := exec_(12, 40),
        main := exec_(13, NGINX),
        made("mkdir", 43, b"/system.slice/nginx.service"),  # a new cgroup at the old path
        exec_(14, 43),
    ]
    assert run(spec, events)[-3:] == [rename, worker, main]


def test_a_unit_name_without_a_suffix_is_a_service_and_matches_any_component() -> None:
    events = [
        nginx := exec_(10, NGINX),
        exec_(11, CRON),
        made("mkdir", 40, b"/system.slice/nginx.service/worker"),
        worker := exec_(12, 40),
    ]
    assert run(FilterSpec(units=("nginx",)), events) == [nginx, events[2], worker]
    assert run(FilterSpec(units=("system.slice",)), [nginx, cron := exec_(11, CRON), user := exec_(15, USER)]) == [
        nginx,
        cron,
    ]
    assert user.pid == 15


def test_a_container_prefix_matches_its_cgroup_and_the_ones_inside_it() -> None:
    events = [
        in_container := exec_(10, DOCKER_SCOPE),
        exec_(11, NGINX),
        made("mkdir", 40, f"/system.slice/docker-{CONTAINER}.scope/init.scope".encode()),
        nested := exec_(12, 40),
    ]
    assert run(FilterSpec(containers=("3f2a9c",)), events) == [in_container, events[2], nested]
    assert run(FilterSpec(containers=("3f2a9d",)), events) == []
    with pytest.raises(FilterError, match="container id"):
        EventFilter(FilterSpec(containers=("not-hex",)), table())


def test_the_options_restrict_each_other_and_the_other_filters() -> None:
    events = [nginx := exec_(10, NGINX, b"nginx"), exec_(11, CRON, b"cron"), exec_(12, NGINX, b"sleep")]
    assert run(FilterSpec(cgroups=("/system.slice",), units=("nginx",)), events) == [nginx, events[2]]
    assert run(FilterSpec(cgroups=("/user.slice",), units=("nginx",)), events) == []
    assert run(FilterSpec(units=("nginx", "cron")), events) == events  # one option: any of its values
    assert run(FilterSpec(units=("nginx",), comms=("nginx",)), events) == [nginx]
    assert run(FilterSpec(units=("cron",), comms=("nginx",)), events) == []
    assert run(FilterSpec(units=("nginx",), kinds=frozenset({"exit"})), events) == []


def test_signals_and_reaps_about_a_process_in_count_by_its_membership() -> None:
    spec = FilterSpec(units=("nginx",))
    events = [
        exec_(10, NGINX),
        to_nginx := kill(99, 10, USER),  # from outside, to a process in
        kill(99, 98, USER),
        delivered := kill(10, 10, NGINX, SIGNAL_DELIVER),
        exit_(10, NGINX),
        reaped := reap(1, 10, ROOT),  # its reaper is elsewhere
        kill(99, 10, USER),  # pid 10 is gone: whoever gets it next is not known to be in
    ]
    assert run(spec, events) == [events[0], to_nginx, delivered, events[4], reaped]


def test_a_child_starts_in_its_parents_cgroup_and_a_process_that_moves_leaves() -> None:
    spec = FilterSpec(units=("nginx",))
    events = [
        forked := fork(10, 20, NGINX),
        to_child := kill(99, 20, USER),  # before the child's first event of its own
        moved := exec_(20, CRON),
        kill(99, 20, USER),
    ]
    assert run(spec, events) == [forked, to_child]
    assert moved not in run(spec, events)


def test_processes_running_at_start_are_in_by_their_proc_cgroup() -> None:
    def proc(pid: int, cgroup: bytes | None) -> ProcInfo:
        return ProcInfo(
            pid, 1, 0, b"nginx", [b"nginx"], 0, 1, None if cgroup is None else ProcessContext(cgroup=cgroup)
        )

    snapshot = [proc(10, b"/system.slice/nginx.service"), proc(11, b"/user.slice"), proc(12, None)]
    # Events without a cgroup id (a kernel that gives none) go by membership.
    events = [kill(99, 10, 0), kill(99, 11, 0), exit_(10, 0), exit_(12, 0)]
    assert run(FilterSpec(units=("nginx",)), events, snapshot) == [events[0], events[2]]
    # A path the recording's table does not have (removed before it began) is matched by its place.
    gone = [proc(13, b"/system.slice/nginx.service/gone"), proc(14, b"/user.slice/gone")]
    signals = [kill(99, 13, 0), kill(99, 14, 0)]
    assert run(FilterSpec(cgroups=("/system.slice",)), signals, gone) == signals[:1]


def test_an_id_the_table_does_not_know_leaves_the_membership_as_it_was() -> None:
    spec = FilterSpec(units=("nginx",))
    events = [exec_(10, NGINX), exit_(10, 777), exec_(11, 777)]
    assert run(spec, events) == events[:2]


def test_a_replay_filters_as_the_live_session_did(tmp_path: Path) -> None:
    """Live: a table scanned from the hierarchy (a directory tree stands in),
    the step naming exec cgroups. Replay: the table rebuilt from what the
    recording holds (its header, its cgroup events, its exec contexts). The
    same filter gives the same events, on a recording made with it and on one
    made without any filter."""
    nginx_dir = tmp_path / "system.slice/nginx.service"
    nginx_dir.mkdir(parents=True)
    (tmp_path / "user.slice").mkdir()
    nginx_id, user_id = nginx_dir.stat().st_ino, (tmp_path / "user.slice").stat().st_ino

    def exec_with_context(pid: int, cgroup_id: int, name: bytes) -> ExecEvent:
        return ExecEvent(**base(pid, cgroup_id), filename=b"/bin/" + name, argv=[name], context=ProcessContext())  # type: ignore[arg-type]

    def live(spec: FilterSpec) -> tuple[list[dict[str, object]], list[Event]]:
        """A session from start: the header it writes and the events it shows."""
        for name in ("w1", "w2"):
            if (nginx_dir / name).exists():
                (nginx_dir / name).rmdir()
        table = CgroupTable(str(tmp_path), live=True, rescan_interval_s=0)
        table.scan()
        header = table.to_list()
        # Made after start: w1 announced by its mkdir event, w2 by none (lost):
        # live finds it by a rescan, a replay by the path its exec was given.
        (nginx_dir / "w1").mkdir()
        (nginx_dir / "w2").mkdir()
        w1, w2 = (nginx_dir / "w1").stat().st_ino, (nginx_dir / "w2").stat().st_ino
        events: list[Event] = [
            exec_with_context(10, nginx_id, b"nginx"),
            made("mkdir", w1, b"/system.slice/nginx.service/w1", nginx_id),
            fork(10, 11, nginx_id),
            exec_with_context(11, w1, b"worker"),
            exec_with_context(12, user_id, b"bash"),
            kill(12, 11, user_id),
            fork(10, 13, nginx_id),
            exec_with_context(13, w2, b"worker2"),
            fork(13, 14, w2),
            # Started outside, then moved into w2 (cgroup.procs) before its exec:
            # only the exec's cgroup says it is in now.
            fork(12, 15, user_id),
            exec_with_context(15, w2, b"moved"),
            fork(15, 16, w2),
            reap(10, 11, nginx_id),
        ]
        return header, EventFilter(spec, table)(CgroupContextStep(table, resolve=True)(events))

    def replay(spec: FilterSpec, header: list[dict[str, object]], recorded: list[Event]) -> list[Event]:
        table = CgroupTable.from_list(header, str(tmp_path))
        return EventFilter(spec, table)(CgroupContextStep(table, resolve=False)(recorded))

    def summary(events: list[Event]) -> list[tuple[str, int, bytes | None]]:
        return [(e.kind, e.pid, e.context.cgroup if isinstance(e, ExecEvent) and e.context else None) for e in events]

    header_all, everything = live(FilterSpec())
    assert [e.context.cgroup for e in everything if isinstance(e, ExecEvent) and e.context] == [
        b"/system.slice/nginx.service",
        b"/system.slice/nginx.service/w1",
        b"/user.slice",
        b"/system.slice/nginx.service/w2",
        b"/system.slice/nginx.service/w2",
    ]
    for spec in (FilterSpec(units=("nginx",)), FilterSpec(cgroups=("/system.slice",)), FilterSpec(units=("bash",))):
        header, shown = live(spec)
        assert summary(replay(spec, header, shown)) == summary(shown)
        assert summary(replay(spec, header_all, everything)) == summary(shown)
    _, nginx_tree = live(FilterSpec(units=("nginx",)))
    # 12 for its signal to a worker, not for its fork of 15, which was outside then.
    assert {e.pid for e in nginx_tree if e.kind != "cgroup"} == {10, 11, 12, 13, 15}
    assert [(e.kind, e.pid) for e in nginx_tree if e.pid in (12, 15)] == [("signal", 12), ("exec", 15), ("fork", 15)]


def test_what_the_kernel_is_given_to_filter_by_cgroup() -> None:
    t = table()
    t.apply("mkdir", 40, b"/system.slice/nginx.service/w")
    t.apply("mkdir", 41, b"/user.slice/nginx.service")
    assert kernel_cgroup_selection(FilterSpec(units=("nginx",)), t) == {NGINX, 40, 41}
    assert kernel_cgroup_selection(FilterSpec(cgroups=("/system.slice/nginx.service",)), t) == {NGINX, 40}
    both = kernel_cgroup_selection(FilterSpec(cgroups=("/user.slice",), containers=("3F2A",)), t)
    # The kernel takes any option's match: more than user space's AND, never less.
    assert both == {USER, 41, DOCKER_SCOPE}
    assert kernel_cgroup_selection(FilterSpec(), t) == frozenset()


def test_the_kernel_is_told_of_a_cgroup_made_later_by_the_same_rule() -> None:
    t = table()
    rule = KernelCgroupRule(FilterSpec(cgroups=("/user.slice",), containers=("3f2a",)), t)
    t.apply("mkdir", 50, b"/user.slice/new")  # below a --cgroup root
    t.apply("mkdir", 51, b"/system.slice/docker-" + b"3f2a" + b"0" * 60 + b".scope")  # a matching container
    t.apply("mkdir", 52, b"/system.slice/other.service")
    assert (rule(50), rule(51), rule(52)) == (True, True, False)
    assert rule(9999)  # unknown to the table: sent, and user space decides


def test_live_a_cgroup_that_does_not_exist_or_no_hierarchy_at_all_is_an_error() -> None:
    check_cgroup_paths(FilterSpec(cgroups=("/system.slice",)), table())
    with pytest.raises(FilterError, match=r"--cgroup /nope: no such cgroup \(/sys/fs/cgroup/unified/nope"):
        check_cgroup_paths(FilterSpec(cgroups=("/nope",)), table())
    with pytest.raises(FilterError, match="no cgroup2 file system is mounted"):
        check_cgroup_paths(FilterSpec(units=("nginx",)), CgroupTable())
    check_cgroup_paths(FilterSpec(), CgroupTable())  # no cgroup filter: nothing needed


def test_a_path_unknown_to_a_recording_is_taken_when_a_cgroup_is_made_there() -> None:
    spec = FilterSpec(cgroups=("/later.scope",))
    events = [
        exec_(10, NGINX),
        later := made("mkdir", 40, b"/later.scope"),
        inside := exec_(11, 40),
        renamed := made("rename", 40, b"/renamed.scope"),
        still := exec_(12, 40),
    ]
    assert run(spec, events) == [later, inside, renamed, still]


def test_the_options_are_kept_in_the_recording_header() -> None:
    spec = FilterSpec(cgroups=("/a",), units=("nginx.service",), containers=("3f2a",))
    d = spec.as_dict()
    assert (d["cgroup"], d["unit"], d["container"]) == (["/a"], ["nginx.service"], ["3f2a"])
    assert FilterSpec().as_dict()["cgroup"] == []
