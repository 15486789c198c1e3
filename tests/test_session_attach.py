"""Attaching a live session (tracer/session/attach.py) and running one
(tracer/session/live.py), with a fake probe in place of the BPF programs: what
the kernel is asked to filter and what is left to user space, the one cleanup
path, and what a session hands back to the command line."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from proctrace.formats.recording import RecordingError, open_recording
from proctrace.kernel.probe import ProbeError
from proctrace.kernel.program import ProgramOptions
from proctrace.model.events import Event
from proctrace.model.filters import FilterError, FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session import attach as attach_module
from proctrace.session.attach import attach, buffer_pages, kernel_options
from proctrace.session.live import trace_live
from proctrace.session.options import OutputOptions, RotationOptions, SessionOptions, TransportOptions

from tests.synthetic import INIT, MS, execve, exit_, fork

RING = TransportOptions(buffer="ring")  # not probed on this machine


# --- what the kernel filters itself ---------------------------------------------------

NOTHING_IN_KERNEL = {"follow": False, "follow_children": False, "match_comms": False}
COMMAND_TREE = {"follow": True, "follow_children": True, "match_comms": False}


@pytest.mark.parametrize(
    ("spec", "command", "expected"),
    [
        # -- COMMAND: its tree, followed from its pid; a -c is then matched in user space
        (FilterSpec(), ["make"], COMMAND_TREE),
        (FilterSpec(comms=("make",)), ["make"], COMMAND_TREE),
        # -p: the pid, and with -f what it forks
        (FilterSpec(pids=(12,)), None, {"follow": True, "follow_children": False, "match_comms": False}),
        (FilterSpec(pids=(12,), follow=True), None, {"follow": True, "follow_children": True, "match_comms": False}),
        # a literal -c: matched at exec in the kernel
        (FilterSpec(comms=("make",)), None, {"follow": True, "follow_children": False, "match_comms": True}),
        (
            FilterSpec(comms=("make",), follow=True),
            None,
            {"follow": True, "follow_children": True, "match_comms": True},
        ),
        # a glob or a regex: user space only, even next to a pid
        (FilterSpec(comms=("ma*",)), None, NOTHING_IN_KERNEL),
        (FilterSpec(comms=("make",), regex=True), None, NOTHING_IN_KERNEL),
        (FilterSpec(comms=("ma?e",), pids=(12,)), None, NOTHING_IN_KERNEL),
        # -f alone selects nothing to follow; the narrowing filters are user space's
        (FilterSpec(follow=True), None, NOTHING_IN_KERNEL),
        (FilterSpec(uids=(0,), kinds=frozenset({"exec"}), exclude=("sh",), no_threads=True), None, NOTHING_IN_KERNEL),
    ],
)
def test_what_the_kernel_filters_itself(spec: FilterSpec, command: list[str] | None, expected: dict[str, bool]) -> None:
    assert kernel_options(spec, command) == expected


def test_buffer_sizes_become_pages_a_power_of_two_in_number() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    assert buffer_pages(None, ring=True) * page == 4 << 20
    assert buffer_pages(None, ring=False) * page == 1 << 20
    assert buffer_pages(3 * page, ring=True) == 4
    assert buffer_pages(1, ring=False) == 1
    # --env's execs are larger: by default their buffer is too, unless a size was given
    assert buffer_pages(None, ring=True, large_events=True) * page == 16 << 20
    assert buffer_pages(None, ring=False, large_events=True) * page == 4 << 20
    assert buffer_pages(8 << 20, ring=True, large_events=True) * page == 8 << 20


# --- a fake kernel side ---------------------------------------------------------------

OUR_SHELL, MAKE, OTHER = 4000, 4001, 4002
SNAPSHOT = [
    ProcInfo(OUR_SHELL, INIT, 0, b"bash", [b"bash"], 1 * MS),
    ProcInfo(MAKE, OUR_SHELL, 0, b"make", [b"make", b"-j2"], 2 * MS),
    ProcInfo(OTHER, INIT, 0, b"sshd", [b"/usr/sbin/sshd"], 3 * MS),
]


class FakePlan:
    """Stands in for the program's source and cached image."""

    cached: ClassVar[bool] = False

    def __init__(self, options: ProgramOptions) -> None:
        self.options = options
        self.image = object() if FakePlan.cached else None


class FakeLoader:
    """Stands in for the forked helper that compiles the programs."""

    instances: ClassVar[list[FakeLoader]] = []

    def __init__(self) -> None:
        self.abandoned = False
        FakeLoader.instances.append(self)

    def abandon(self) -> None:
        self.abandoned = True


class FakeProbe:
    """Stands in for the loaded BPF programs: notes what it is told, hands out scripted batches."""

    instances: ClassVar[list[FakeProbe]] = []
    fail_to_load: ClassVar[bool] = False
    fallback_error: ClassVar[str | None] = None  # as Probe says when it fell back to probe reads

    def __init__(self, options: ProgramOptions, loader: FakeLoader | None, plan: FakePlan) -> None:
        # A cache miss hands the probe a loader still waiting; a hit, none
        assert (loader is None) == (plan.image is not None)
        assert loader is None or not loader.abandoned
        if FakeProbe.fail_to_load:
            raise ProbeError("the BPF program did not load: fake")
        self.options = options
        self.followed: list[int] = []
        self.matched: list[bytes] = []
        self.batches: list[list[Event]] = []
        self.closed = self.closed_in_background = False
        self.buffer_bytes = 4 << 20
        self.selected_cgroups: list[int] = []
        self.cgroup_decisions: list[tuple[int, bool]] = []
        FakeProbe.instances.append(self)

    def follow(self, pid: int) -> None:
        self.followed.append(pid)

    def match_comm(self, comm: bytes) -> None:
        self.matched.append(comm)

    def select_cgroups(self, ids: list[int]) -> None:
        self.selected_cgroups += ids

    def decide_cgroup(self, cgroup_id: int, selected: bool) -> None:
        self.cgroup_decisions.append((cgroup_id, selected))

    def drain(self) -> tuple[list[Event], list[ValueError]]:
        return (self.batches.pop(0) if self.batches else []), []

    def lost(self) -> dict[str, int]:
        return {"lifecycle": 0, "signal": 0}

    def folded(self, final: bool = False) -> list[Event]:
        return []

    def close(self) -> None:
        self.closed = True

    def close_in_background(self) -> None:
        self.closed_in_background = True


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[FakeProbe]:
    """Attach with the fake probe; the machine's /proc is SNAPSHOT plus this process."""
    FakeProbe.instances = []
    FakeProbe.fail_to_load = False
    ours = ProcInfo(os.getpid(), INIT, 0, b"python3", [b"python3"], 4 * MS)
    monkeypatch.setattr(attach_module, "ensure_live_ready", lambda: None)
    FakeLoader.instances = []
    monkeypatch.setattr(attach_module, "start_loader", FakeLoader)
    FakePlan.cached = False
    monkeypatch.setattr(attach_module, "plan_program", FakePlan)
    monkeypatch.setattr(attach_module, "Probe", FakeProbe)
    monkeypatch.setattr(attach_module, "snapshot", lambda: [*SNAPSHOT, ours])
    # The test runner keeps its own Ctrl-C.
    monkeypatch.setattr(attach_module.StopFlag, "catch_signals", lambda self: None)
    return FakeProbe.instances


def session(spec: FilterSpec | None = None, command: list[str] | None = None, **outputs: Any) -> SessionOptions:
    return SessionOptions(
        outputs=OutputOptions(**outputs),
        filters=spec or FilterSpec(),
        transport=RING,
        command=None if command is None else tuple(command),
    )


def marker_command(tmp_path: Path) -> tuple[list[str], Path]:
    marker = tmp_path / "ran"
    return ["/bin/touch", str(marker)], marker


# --- the kernel's share and user space's ----------------------------------------------


def test_signals_get_a_buffer_of_their_own_and_the_kernel_its_signal_options(probes: list[FakeProbe]) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    transport = TransportOptions(buffer="ring", buffer_size=8 << 20, signal_rate=50, all_signals=True)
    with attach(SessionOptions(transport=transport)):
        options = probes[0].options
        assert options.buffer_pages * page == options.signal_buffer_pages * page == 8 << 20
        assert (options.signal_rate, options.all_signals) == (50, True)
    probes.clear()
    transport = TransportOptions(buffer="ring", signal_buffer_size=64 << 10)
    with attach(SessionOptions(transport=transport)):
        options = probes[0].options
        assert (options.buffer_pages * page, options.signal_buffer_pages * page) == (4 << 20, 64 << 10)
        assert (options.signal_rate, options.all_signals) == (1000, False)


def test_with_env_the_lifecycle_buffer_grows_and_the_signals_one_does_not(probes: list[FakeProbe]) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    with attach(SessionOptions(transport=TransportOptions(buffer="ring", env=True))):
        options = probes[0].options
        assert (options.buffer_pages * page, options.signal_buffer_pages * page) == (16 << 20, 4 << 20)


def test_a_literal_name_is_matched_in_the_kernel_and_its_running_processes_followed(probes: list[FakeProbe]) -> None:
    with attach(session(FilterSpec(comms=("make",)))) as kernel:
        (probe,) = probes
        assert probe.matched == [b"make"]
        assert probe.followed == [MAKE]
        assert kernel.event_filter.selected == {MAKE}


def test_pids_and_the_running_matches_are_followed(probes: list[FakeProbe]) -> None:
    with attach(session(FilterSpec(comms=("make",), pids=(OTHER,), follow=True))):
        assert probes[0].followed == [OTHER, MAKE]
        assert probes[0].options.follow_children


def test_a_name_longer_than_comm_is_matched_as_the_kernel_cuts_it(probes: list[FakeProbe]) -> None:
    with attach(session(FilterSpec(comms=("a-very-long-program-name",)))):
        assert probes[0].matched == [b"a-very-long-pro"]


def test_a_glob_asks_nothing_of_the_kernel_and_selects_in_user_space(probes: list[FakeProbe]) -> None:
    with attach(session(FilterSpec(comms=("ma*",)))) as kernel:
        assert (probes[0].matched, probes[0].followed) == ([], [])
        new_make = execve(10 * MS, 5000, 9 * MS, [b"make"])
        ls = execve(11 * MS, 5001, 9 * MS, [b"ls"])
        assert kernel.event_filter([new_make, ls]) == [new_make]


def test_user_space_still_filters_what_the_kernel_sends(probes: list[FakeProbe]) -> None:
    """The kernel sends every event of a followed process; -e, -u, -C and
    --no-threads are applied after it, and so is the selection itself."""
    spec = FilterSpec(comms=("make",), kinds=frozenset({"exec"}))
    with attach(session(spec)) as kernel:
        assert probes[0].options.match_comms
        make_exec = execve(10 * MS, MAKE, 2 * MS, [b"make", b"all"], ppid=OUR_SHELL)
        make_exit = exit_(11 * MS, MAKE, 2 * MS, ppid=OUR_SHELL, comm=b"make")
        stray = execve(12 * MS, OTHER, 3 * MS, [b"sshd"], ppid=INIT)
        assert kernel.event_filter([make_exec, make_exit, stray]) == [make_exec]


def test_neither_the_tracer_nor_its_command_is_among_the_running_processes(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    command, _ = marker_command(tmp_path)
    with attach(session(command=command)) as kernel:
        assert kernel.held is not None
        pids = {p.pid for p in kernel.snapshot}
        assert pids == {p.pid for p in SNAPSHOT}
        assert os.getpid() not in pids
        assert probes[0].followed == []  # the command is followed when released, not before
        kernel.release_command()
        assert probes[0].followed == [kernel.held.pid]
        kernel.held.wait()


# --- one cleanup path -----------------------------------------------------------------


def test_a_probe_that_fails_to_load_lets_the_held_command_go_without_running(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    FakeProbe.fail_to_load = True
    command, marker = marker_command(tmp_path)
    with pytest.raises(ProbeError), attach(session(command=command)):
        pass
    assert not marker.exists()


def test_a_failure_before_the_command_is_released_detaches_now_and_abandons_it(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    command, marker = marker_command(tmp_path)
    with pytest.raises(RecordingError), attach(session(command=command)) as kernel:
        held = kernel.held
        raise RecordingError("the outputs could not be opened")
    assert probes[0].closed and not probes[0].closed_in_background
    assert held is not None and held.status is not None
    assert os.WIFEXITED(held.status) and os.WEXITSTATUS(held.status) == 125
    assert not marker.exists()


def test_a_failure_after_the_release_detaches_now_and_leaves_the_command_be(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    command, marker = marker_command(tmp_path)
    with pytest.raises(BrokenPipeError), attach(session(command=command)) as kernel:
        kernel.release_command()
        held = kernel.held
        raise BrokenPipeError
    assert probes[0].closed and not probes[0].closed_in_background
    assert held is not None and held.wait() == 0
    assert marker.exists()


def test_a_kernel_that_refused_the_btf_reads_is_told_once_on_stderr(
    probes: list[FakeProbe], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with attach(session()):
        pass
    assert "BTF" not in capsys.readouterr().err
    monkeypatch.setattr(FakeProbe, "fallback_error", "the BPF program did not load: R1 invalid mem access")
    with attach(session()):
        pass
    err = capsys.readouterr().err
    assert err.count("refused the program's reads through BTF pointers") == 1
    assert "bpf_probe_read_kernel" in err


def test_a_session_that_ends_normally_detaches_in_the_background(probes: list[FakeProbe]) -> None:
    with attach(session()):
        pass
    assert probes[0].closed_in_background and not probes[0].closed


# --- a whole live session -------------------------------------------------------------


def test_a_live_session_streams_the_events_and_exits_with_the_command_status(
    probes: list[FakeProbe], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "events.jsonl"
    batch = [fork(10 * MS, 5000, by=MAKE), exit_(11 * MS, 5000, 10 * MS, ppid=MAKE)]
    real_init = FakeProbe.__init__

    def init_with_events(self: FakeProbe, options: ProgramOptions, loader: FakeLoader | None, plan: FakePlan) -> None:
        real_init(self, options, loader, plan)
        self.batches = [batch]

    monkeypatch.setattr(FakeProbe, "__init__", init_with_events)
    result = trace_live(session(command=["/bin/sh", "-c", "exit 3"], json=True, output_path=str(out)))
    assert (result.exit_code, result.leave_without_cleanup) == (3, True)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["type"], d["ts_ns"], d["pid"]) for d in lines] == [(ev.kind, ev.ts_ns, ev.pid) for ev in batch]
    assert probes[0].closed_in_background
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "proctrace: tracing /bin/sh and its descendants (ring buffer); Ctrl-C to stop",
        "proctrace: 2 events, 0 lost",
    ]


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(probes: list[FakeProbe], tmp_path: Path) -> None:
    options = session(command=["/bin/sh", "-c", "kill -TERM $$"], quiet=True, record_path=str(tmp_path / "s.rec"))
    result = trace_live(options)
    assert result.exit_code == 128 + signal.SIGTERM


def test_a_live_recording_keeps_the_options_and_why_it_ended(probes: list[FakeProbe], tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    spec = FilterSpec(kinds=frozenset({"exec", "exit"}))
    options = SessionOptions(
        outputs=OutputOptions(quiet=True, record_path=str(path)),
        filters=spec,
        transport=TransportOptions(buffer="perf", buffer_size=1 << 20, argv_max=8192),
        command=("/bin/true",),
    )
    trace_live(options)
    recording = open_recording(str(path))
    list(recording.records())
    options_kept = recording.header["options"]
    assert recording.header["buffer"] == "perf"
    assert options_kept["filters"] == spec.as_dict()
    assert (options_kept["argv_max"], options_kept["buffer_size"]) == (8192, 1 << 20)
    assert isinstance(options_kept["command_pid"], int) and options_kept["command_pid"] != os.getpid()
    assert recording.trailer is not None and recording.trailer["reason"] == "the command ended"
    assert {p.pid for p in recording.snapshot} == {p.pid for p in SNAPSHOT}


def test_a_live_session_stopped_by_a_signal_says_so_in_the_recording(
    probes: list[FakeProbe], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stopped_at_once(self: attach_module.StopFlag) -> None:
        self.signo = signal.SIGINT

    monkeypatch.setattr(attach_module.StopFlag, "catch_signals", stopped_at_once)
    path = tmp_path / "s.rec"
    result = trace_live(session(quiet=True, record_path=str(path)))
    assert result.exit_code == 0 and result.leave_without_cleanup
    recording = open_recording(str(path))
    list(recording.records())
    assert recording.trailer is not None and recording.trailer["reason"] == "stopped by SIGINT"


def test_an_existing_recording_is_refused_before_the_kernel_is_touched(probes: list[FakeProbe], tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    path.write_text("")
    with pytest.raises(RecordingError, match="exists"):
        trace_live(session(quiet=True, record_path=str(path)))
    assert probes == []


def test_outputs_that_cannot_be_opened_stop_the_session_before_the_command_runs(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    command, marker = marker_command(tmp_path)
    with pytest.raises(RecordingError, match="cannot write"):
        trace_live(session(command=command, output_path=str(tmp_path / "missing" / "out.txt")))
    assert probes[0].closed
    assert not marker.exists()


def test_a_failure_before_the_programs_load_stops_the_loader_it_forked(probes: list[FakeProbe]) -> None:
    spec = FilterSpec(cgroups=("/no/such/cgroup/anywhere",))
    with pytest.raises(FilterError), attach(session(spec)):
        pass
    assert FakeLoader.instances and FakeLoader.instances[0].abandoned
    assert not probes  # it failed before any probe was made


def test_a_session_that_loaded_hands_its_loader_to_the_probe(probes: list[FakeProbe]) -> None:
    with attach(session()):
        assert len(FakeLoader.instances) == 1 and not FakeLoader.instances[0].abandoned


def test_a_program_compiled_before_is_loaded_without_forking_a_loader(probes: list[FakeProbe]) -> None:
    FakePlan.cached = True
    with attach(session()):
        assert probes and not FakeLoader.instances


def test_sigusr1_starts_the_next_part_of_a_live_rotated_recording_between_batches(
    probes: list[FakeProbe], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live path of rotation: trace_live installs the handler, the signal
    comes while the kernel is drained, and the batch drained with it starts
    the new part; the part's snapshot has the process forked before it."""
    first = [fork(10 * MS, 5000, by=MAKE), execve(10 * MS + 500, 5000, 10 * MS, [b"cc1"])]
    second = [exit_(12 * MS, 5000, 10 * MS, ppid=MAKE)]
    flags: list[attach_module.StopFlag] = []
    monkeypatch.setattr(attach_module.StopFlag, "catch_signals", lambda self: flags.append(self))
    drains = 0

    def drain(self: FakeProbe) -> tuple[list[Event], list[ValueError]]:
        nonlocal drains
        drains += 1
        if drains == 1:
            return list(first), []
        if drains == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
            return list(second), []
        flags[0].signo = signal.SIGTERM
        return [], []

    monkeypatch.setattr(FakeProbe, "drain", drain)
    path = tmp_path / "s.rec"
    before = signal.getsignal(signal.SIGUSR1)
    try:
        trace_live(session(quiet=True, record_path=str(path), rotation=RotationOptions(size=1 << 30)))
    finally:
        signal.signal(signal.SIGUSR1, before)
    parts = [open_recording(str(path)), open_recording(str(tmp_path / "s.rec.1"))]
    assert [[ev for batch in part.events() for ev in batch] for part in parts] == [first, second]
    assert [p.trailer["reason"] for p in parts if p.trailer] == ["rotated", "stopped by SIGTERM"]
    assert 5000 in {p.pid for p in parts[1].snapshot} and 5000 not in {p.pid for p in parts[0].snapshot}
    assert [part.header["rotation"]["part"] for part in parts] == [0, 1]
    assert sorted(os.listdir(tmp_path)) == ["s.rec", "s.rec.1"]


def test_a_rotation_over_an_earlier_series_is_refused_before_the_kernel_is_touched(
    probes: list[FakeProbe], tmp_path: Path
) -> None:
    (tmp_path / "s.rec.4").write_text("an earlier session's part\n")
    with pytest.raises(RecordingError, match=r"s\.rec\.4 exists; use --force"):
        trace_live(session(quiet=True, record_path=str(tmp_path / "s.rec"), rotation=RotationOptions(size=1 << 20)))
    assert probes == []
    assert sorted(os.listdir(tmp_path)) == ["s.rec.4"]
