"""The cgroup table in a session: the live session scans it once attached,
refuses a --cgroup that names nothing before the probes load, and records it;
a replay rebuilds it from the header; the command line takes the options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from proctrace import cli
from proctrace.formats.recording import RecordingError, RecordingWriter, make_header, open_recording
from proctrace.model.cgroups import CgroupTable
from proctrace.model.context import ProcessContext
from proctrace.model.events import CgroupEvent
from proctrace.model.filters import FilterError, FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session import attach as attach_module
from proctrace.session.attach import attach
from proctrace.session.cgroups import live_step
from proctrace.session.live import trace_live
from proctrace.session.loop import SessionResult
from proctrace.session.options import OutputOptions, SessionOptions
from proctrace.session.replay import replay

from tests.synthetic import INIT, MS, SHELL, SHELL_START, execve, exit_, fork
from tests.test_session_attach import RING, FakeProbe, probes  # noqa: F401  (the fixture)
from tests.test_session_replay import CLOCK

NGINX = b"/system.slice/nginx.service"


@pytest.fixture
def hierarchy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory tree as the machine's unified hierarchy."""
    root = tmp_path / "unified"
    (root / "system.slice/nginx.service").mkdir(parents=True)
    monkeypatch.setattr(
        attach_module.CgroupTable, "discover", classmethod(lambda cls: _scanned(cls(str(root), live=True)))
    )
    return root


def _scanned(table: CgroupTable) -> CgroupTable:
    table.scan()
    return table


def live_options(spec: FilterSpec, command: tuple[str, ...] | None = None, **outputs: object) -> SessionOptions:
    return SessionOptions(outputs=OutputOptions(**outputs), filters=spec, transport=RING, command=command)  # type: ignore[arg-type]


def test_a_cgroup_that_does_not_exist_fails_before_the_probes_load(
    probes: list[FakeProbe],  # noqa: F811
    hierarchy: Path,
) -> None:
    with (
        pytest.raises(FilterError, match=r"--cgroup /system\.slice/gone\.service: no such cgroup"),
        attach(live_options(FilterSpec(cgroups=("/system.slice/gone.service",)))),
    ):
        pass
    assert probes == []


def test_the_attached_session_has_the_table_and_a_filter_that_uses_it(
    probes: list[FakeProbe],  # noqa: F811
    hierarchy: Path,
) -> None:
    with attach(live_options(FilterSpec(cgroups=(f"{hierarchy}/system.slice",)))) as kernel:
        nginx_id = kernel.cgroups.id_of(NGINX)
        assert nginx_id == (hierarchy / "system.slice/nginx.service").stat().st_ino
        assert kernel.event_filter.cgroups is not None
        assert kernel.event_filter.cgroups.cgroup_in(nginx_id) is True
        assert kernel.event_filter.cgroups.cgroup_in(kernel.cgroups.id_of(b"/")) is False  # type: ignore[arg-type]


def test_a_cgroup_filter_selects_in_the_kernel_what_matches_at_start(
    probes: list[FakeProbe],  # noqa: F811
    hierarchy: Path,
) -> None:
    with attach(live_options(FilterSpec(cgroups=(f"{hierarchy}/system.slice",)))) as kernel:
        probe = probes[-1]
        assert probe.options.cgroup_filter
        system = kernel.cgroups.id_of(b"/system.slice")
        assert sorted(probe.selected_cgroups) == sorted([system, kernel.cgroups.id_of(NGINX)])
    with attach(live_options(FilterSpec())):
        assert not probes[-1].options.cgroup_filter and probes[-1].selected_cgroups == []


def test_the_kernel_is_told_whether_each_cgroup_made_while_tracing_is_selected(
    probes: list[FakeProbe],  # noqa: F811
    hierarchy: Path,
) -> None:
    with attach(live_options(FilterSpec(units=("nginx",)))) as kernel:
        probe = probes[-1]
        step = live_step(kernel.cgroups, probe, FilterSpec(units=("nginx",)))  # type: ignore[arg-type]
        made = [
            CgroupEvent(1, 1, 1, 0, 0, b"systemd", 0, 0, "mkdir", 700, NGINX + b"/worker"),
            CgroupEvent(2, 1, 1, 0, 0, b"systemd", 0, 0, "mkdir", 701, b"/system.slice/cron.service"),
            CgroupEvent(3, 1, 1, 0, 0, b"systemd", 0, 0, "rmdir", 701, b"/system.slice/cron.service"),
        ]
        step(made)
        assert probe.cgroup_decisions == [(700, True), (701, False)]


def test_a_live_recording_keeps_the_table_at_start(
    probes: list[FakeProbe],  # noqa: F811
    hierarchy: Path,
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.rec"
    trace_live(live_options(FilterSpec(), ("/bin/true",), quiet=True, record_path=str(path)))
    header = open_recording(str(path)).header
    assert header["cgroup_mount"] == str(hierarchy)
    assert {e["path"] for e in header["cgroups"]} == {"/", "/system.slice", "/system.slice/nginx.service"}
    assert (
        CgroupTable.from_list(header["cgroups"]).id_of(NGINX)
        == (hierarchy / "system.slice/nginx.service").stat().st_ino
    )


def record_with_cgroups(path: Path, cgroups: object) -> Path:
    """A shell that was running in nginx.service at start, and what it did."""
    shell = ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START, 1, ProcessContext(cgroup=NGINX))
    other = ProcInfo(SHELL + 1, INIT, 0, b"sh", [b"sh"], SHELL_START, 1, ProcessContext(cgroup=b"/user.slice"))
    header = make_header(CLOCK, "ring", {"filters": FilterSpec().as_dict()}, [shell, other])
    header["cgroups"] = cgroups
    header["cgroup_mount"] = "/sys/fs/cgroup/unified"
    writer = RecordingWriter.create(str(path), header, force=False)
    writer.write(
        [
            fork(10 * MS, 200),
            execve(11 * MS, 200, 10 * MS, [b"nginx"]),
            fork(12 * MS, 300, by=SHELL + 1),
            exit_(13 * MS, 300, 12 * MS),
        ]
    )
    writer.close("the command ended")
    return path


CGROUPS = [{"id": 1, "path": "/"}, {"id": 7, "path": "/system.slice/nginx.service"}, {"id": 8, "path": "/user.slice"}]


@pytest.mark.parametrize(
    ("spec", "pids"),
    [
        (FilterSpec(units=("nginx",)), [SHELL, 200]),
        (FilterSpec(cgroups=("/sys/fs/cgroup/unified/system.slice",)), [SHELL, 200]),  # under the recorded mount
        (FilterSpec(cgroups=("/user.slice",)), [SHELL + 1, 300]),
        (FilterSpec(units=("cron",)), []),
    ],
)
def test_a_replay_filters_by_cgroup_with_the_recorded_table_and_snapshot(
    tmp_path: Path, spec: FilterSpec, pids: list[int]
) -> None:
    rec, out = record_with_cgroups(tmp_path / "s.rec", CGROUPS), tmp_path / "out.jsonl"
    options = SessionOptions(outputs=OutputOptions(json=True, output_path=str(out)), filters=spec, read_path=str(rec))
    replay(str(rec), options)
    shown = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({e["tgid"] for e in shown}) == pids


def test_a_recording_with_a_bad_cgroup_table_is_refused(tmp_path: Path) -> None:
    rec = record_with_cgroups(tmp_path / "s.rec", [{"id": "7", "path": "/x"}])
    with pytest.raises(RecordingError, match="invalid header: a cgroup entry"):
        replay(str(rec), SessionOptions(filters=FilterSpec(units=("x",)), read_path=str(rec)))
    rec2 = record_with_cgroups(tmp_path / "s2.rec", {"not": "a list"})
    with pytest.raises(RecordingError, match="cgroups must be a list"):
        replay(str(rec2), SessionOptions(read_path=str(rec2)))


def test_the_command_line_takes_the_cgroup_options(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[SessionOptions] = []
    monkeypatch.setattr(cli, "run_session", lambda options: given.append(options) or SessionResult(0))
    cli.main(
        ["--cgroup", "/system.slice", "--unit", "nginx", "--unit", "cron.socket", "--container", "3F2A", "-r", "x"]
    )
    (options,) = given
    assert options.filters.cgroups == ("/system.slice",)
    assert options.filters.units == ("nginx.service", "cron.socket")
    assert options.filters.containers == ("3f2a",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--container", "xyz"], "not a container id"),
        (["--container", "0" * 65], "not a container id"),
        (["--cgroup", "system.slice"], "not a cgroup path"),
        (["--unit", "a/b"], "not a systemd unit name"),
    ],
)
def test_bad_cgroup_options_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "-r", "x"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
