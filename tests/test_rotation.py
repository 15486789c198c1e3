"""Rotation of a recording (tracer/session/rotation.py) and reading the parts
back as one session (tracer/formats/recording_set.py): where parts end, what
each holds, their names, --keep, and that -r of the parts gives exactly what
-r of one unrotated recording of the same events gives. No root: the
recorder is fed synthetic batches with an injected clock, and the command
line replays a synthetic recording into parts."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
from proctrace import cli
from proctrace.formats.recording import RecordingError, RecordingWriter, make_header, open_recording
from proctrace.formats.recording_set import ROTATION_KEY, RecordingSet, open_recordings, recording_paths
from proctrace.model.clock import Clock
from proctrace.model.events import Event, LostRecord
from proctrace.model.filters import FilterSpec
from proctrace.model.procsnap import ProcInfo
from proctrace.session.options import RotationOptions
from proctrace.session.rotation import RotatingRecorder, expand, has_time_fields, numbered, refuse_existing_parts

from tests.synthetic import INIT, MS, SHELL, SHELL_START, execve, exit_, fork, reap

SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)
SNAPSHOT = [ProcInfo(SHELL, INIT, 0, b"sh", [b"sh"], SHELL_START)]
LONG = 900  # a process that lives from the first batch to the last


class FakeClock:
    """The session's monotonic clock, moved by the test."""

    def __init__(self, now_ns: int = 50 * SEC) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def life(pid: int, start: int) -> list[Event]:
    """A short process: forked by the shell, exec'd, exited, reaped."""
    return [
        fork(start, pid),
        execve(start + 10_000, pid, start, [b"job", str(pid).encode()]),
        exit_(start + 20_000, pid, start, comm=b"job"),
        reap(start + 30_000, pid),
    ]


def session_batches(count: int, per_batch: int = 3) -> list[list[Event]]:
    """`count` batches of `per_batch` short lives each; LONG is forked in the
    first batch and exits and is reaped in the last."""
    batches = []
    pid = 1000
    for i in range(count):
        batch: list[Event] = []
        base = 10 * MS + i * MS
        if i == 0:
            batch += [fork(base, LONG), execve(base + 1000, LONG, base, [b"long", b"run"])]
        for j in range(per_batch):
            batch += life(pid, base + 5000 + j * 100_000)
            pid += 1
        if i == count - 1:
            end = base + 900_000
            batch += [exit_(end, LONG, 10 * MS, comm=b"long"), reap(end + 1000, LONG)]
        batches.append(batch)
    return batches


def header() -> dict[str, Any]:
    return make_header(CLOCK, "ring", {"filters": FilterSpec().as_dict(), "command_pid": None}, SNAPSHOT)


def recorder(
    tmp_path: Path,
    rotation: RotationOptions,
    clock: FakeClock | None = None,
    name: str = "p.rec",
    force: bool = False,
) -> RotatingRecorder:
    return RotatingRecorder(
        str(tmp_path / name), header(), list(SNAPSHOT), rotation, force, now_ns=clock or FakeClock()
    )


def recorded(tmp_path: Path, rotation: RotationOptions, batches: list[list[Event]], **kw: Any) -> RotatingRecorder:
    """A session of `batches` recorded with `rotation`, ended by the command's end."""
    rec = recorder(tmp_path, rotation, **kw)
    for batch in batches:
        rec.write(batch)
    rec.close("the command ended")
    return rec


def events_of(path: str | Path) -> list[Event]:
    return [ev for batch in open_recording(str(path)).events() for ev in batch]


def ends_at_batch_boundaries(parts: list[str], batches: list[list[Event]]) -> bool:
    boundaries, total = {0}, 0
    for batch in batches:
        total += len(batch)
        boundaries.add(total)
    seen = 0
    for part in parts:
        seen += len(events_of(part))
        if seen not in boundaries:
            return False
    return True


# --------------------------------------------------------------------------- where parts end


def test_size_rotation_ends_every_part_at_a_batch_boundary(tmp_path: Path) -> None:
    batches = session_batches(12)
    rec = recorded(tmp_path, RotationOptions(size=3000), batches)
    assert len(rec.paths) > 3
    assert ends_at_batch_boundaries(rec.paths, batches)
    assert [ev for part in rec.paths for ev in events_of(part)] == [ev for b in batches for ev in b]
    for part in rec.paths[:-1]:
        # Past the size by at most the batch that crossed it: the check is made before each batch.
        assert os.path.getsize(part) >= 3000


def test_a_batch_larger_than_the_size_goes_whole_into_one_part_and_no_part_is_empty(tmp_path: Path) -> None:
    batches = session_batches(4)
    rec = recorded(tmp_path, RotationOptions(size=1), batches)
    assert [len(events_of(part)) for part in rec.paths] == [len(b) for b in batches]


def test_time_rotation_starts_a_part_every_interval_of_the_session_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    batches = session_batches(6)
    rec = recorder(tmp_path, RotationOptions(interval_s=10), clock)
    for i, batch in enumerate(batches):
        rec.write(batch)
        clock.now_ns += 4 * SEC if i % 2 == 0 else 7 * SEC  # 11 s every two batches
        rec.status("")
    rec.close()
    assert [len(events_of(part)) for part in rec.paths] == [
        len(batches[0]) + len(batches[1]),
        len(batches[2]) + len(batches[3]),
        len(batches[4]) + len(batches[5]),
        0,  # the tick after the last batch began a part the session then ended
    ]


def test_an_idle_session_still_starts_a_part_every_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = recorder(tmp_path, RotationOptions(interval_s=60), clock)
    for _ in range(3):
        clock.now_ns += 30 * SEC
        rec.status("")
    rec.close()
    assert len(rec.paths) == 2  # at 60 s; the tick at 90 s is not due


def test_size_and_time_limits_combine(tmp_path: Path) -> None:
    clock = FakeClock()
    batches = session_batches(6)
    rec = recorder(tmp_path, RotationOptions(size=1, interval_s=3600), clock)
    rec.write(batches[0])
    clock.now_ns += 3600 * SEC
    rec.status("")  # due by time: a new part with no event yet
    for batch in batches[1:]:
        rec.write(batch)  # each due by size once the part holds a batch
    rec.close()
    assert [len(events_of(part)) for part in rec.paths] == [len(b) for b in batches]


def test_a_rotation_request_takes_effect_at_the_next_batch_boundary(tmp_path: Path) -> None:
    batches = session_batches(3)
    rec = recorder(tmp_path, RotationOptions(size=1 << 30))
    rec.write(batches[0])
    rec.request_rotation()
    assert len(rec.paths) == 1  # nothing happens in the request itself
    rec.write(batches[1])
    rec.write(batches[2])
    rec.close()
    assert [len(events_of(part)) for part in rec.paths] == [len(batches[0]), len(batches[1]) + len(batches[2])]


def test_sigusr1_asks_for_a_rotation_and_the_handler_only_sets_the_flag(tmp_path: Path) -> None:
    rec = recorder(tmp_path, RotationOptions(size=1 << 30))
    before = signal.getsignal(signal.SIGUSR1)
    try:
        rec.rotate_on(signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert len(rec.paths) == 1
        rec.status("")
        assert len(rec.paths) == 2
        rec.status("")
        assert len(rec.paths) == 2  # one request, one rotation
    finally:
        signal.signal(signal.SIGUSR1, before)
        rec.close()


def test_the_next_file_is_made_before_the_current_one_is_closed(tmp_path: Path) -> None:
    """A part that cannot be made ends the session with the current file whole."""
    batches = session_batches(2)
    rec = recorder(tmp_path, RotationOptions(size=1))
    rec.write(batches[0])
    (tmp_path / "p.rec.1").write_text("someone else's\n")
    with pytest.raises(RecordingError, match=r"p\.rec\.1 exists"):
        rec.write(batches[1])
    rec.close("failed")
    first = open_recording(str(tmp_path / "p.rec"))
    assert [ev for b in first.events() for ev in b] == batches[0]
    assert first.trailer is not None and first.trailer["reason"] == "failed" and first.warnings == []
    assert (tmp_path / "p.rec.1").read_text() == "someone else's\n"


# --------------------------------------------------------------------------- names


def test_parts_are_numbered_after_the_first_and_gzip_keeps_its_suffix_last() -> None:
    assert [numbered("s.rec", n) for n in range(3)] == ["s.rec", "s.rec.1", "s.rec.2"]
    assert [numbered("s.rec.gz", n) for n in range(3)] == ["s.rec.gz", "s.rec.1.gz", "s.rec.2.gz"]


def test_gzip_parts_are_gzip_by_name_and_by_content(tmp_path: Path) -> None:
    batches = session_batches(3)
    rec = recorded(tmp_path, RotationOptions(size=1), batches, name="p.rec.gz")
    assert [os.path.basename(p) for p in rec.paths] == ["p.rec.gz", "p.rec.1.gz", "p.rec.2.gz"]
    for path, batch in zip(rec.paths, batches, strict=True):
        with gzip.open(path) as f:
            assert json.loads(f.readline())["type"] == "header"
        assert events_of(path) == batch


def test_strftime_fields_are_expanded_in_utc_at_each_parts_start(tmp_path: Path) -> None:
    assert has_time_fields("%Y%m%d.rec") and not has_time_fields("100%%.rec") and not has_time_fields("s.rec")
    clock = FakeClock()
    rec = recorder(tmp_path, RotationOptions(interval_s=3600), clock, name="%Y%m%d-%H%M%S.rec")
    clock.now_ns += 3600 * SEC
    rec.status("")
    rec.close()
    wall = [50 * SEC + CLOCK.offset_ns, 3650 * SEC + CLOCK.offset_ns]
    # 1,700,000,050 s since the epoch is 2023-11-14 22:14:10 UTC.
    assert [os.path.basename(p) for p in rec.paths] == ["20231114-221410.rec", "20231114-231410.rec"]
    assert rec.paths == [expand(str(tmp_path / "%Y%m%d-%H%M%S.rec"), w) for w in wall]


def test_a_name_the_session_already_used_gets_a_number(tmp_path: Path) -> None:
    rec = recorder(tmp_path, RotationOptions(interval_s=3600), name="%Y%m%d.rec.gz")
    rec.request_rotation()
    rec.status("")
    rec.request_rotation()
    rec.status("")
    rec.close()
    assert [os.path.basename(p) for p in rec.paths] == ["20231114.rec.gz", "20231114.rec.1.gz", "20231114.rec.2.gz"]


# --------------------------------------------------------------------------- --keep and --force


def test_keep_deletes_only_this_sessions_oldest_files(tmp_path: Path) -> None:
    others = {"p.rec.99": "an earlier session's\n", "notes.txt": "mine\n", "q.rec": "another\n"}
    for name, text in others.items():
        (tmp_path / name).write_text(text)
    rec = recorder(tmp_path, RotationOptions(size=1, keep=2))
    for batch in session_batches(5):
        rec.write(batch)
    rec.close()
    assert sorted(os.listdir(tmp_path)) == sorted([*others, "p.rec.3", "p.rec.4"])
    assert all((tmp_path / name).read_text() == text for name, text in others.items())


def test_keep_never_deletes_a_file_put_at_an_old_parts_name(tmp_path: Path) -> None:
    rec = recorder(tmp_path, RotationOptions(size=1, keep=2))
    batches = session_batches(3)
    rec.write(batches[0])
    rec.write(batches[1])  # p.rec is closed now
    os.unlink(tmp_path / "p.rec")
    (tmp_path / "p.rec").write_text("not the recorder's file\n")
    rec.write(batches[2])  # p.rec is beyond the two to keep, but no longer the recorder's
    rec.close()
    assert (tmp_path / "p.rec").read_text() == "not the recorder's file\n"
    assert [events_of(tmp_path / name) for name in ("p.rec.1", "p.rec.2")] == batches[1:]


def test_an_earlier_series_is_refused_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    (tmp_path / "p.rec.2").write_text("old\n")
    with pytest.raises(RecordingError, match=r"p\.rec\.2 exists; use --force"):
        refuse_existing_parts(str(tmp_path / "p.rec"), False, 0)
    refuse_existing_parts(str(tmp_path / "p.rec"), True, 0)
    refuse_existing_parts(str(tmp_path / "other.rec"), False, 0)
    rec = recorder(tmp_path, RotationOptions(size=1), force=True)
    batches = session_batches(3)
    for batch in batches:
        rec.write(batch)
    rec.close()
    assert events_of(tmp_path / "p.rec.2") == batches[2]
    assert os.stat(tmp_path / "p.rec.2").st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- each part alone


def test_each_part_is_a_complete_recording_with_the_processes_alive_at_its_start(tmp_path: Path) -> None:
    batches = session_batches(3)
    rec = recorded(tmp_path, RotationOptions(size=1), batches)
    parts = [open_recording(p) for p in rec.paths]
    for part in parts:
        list(part.records())
        assert part.warnings == []  # a trailer, and it counts the file's events
    infos = [part.header[ROTATION_KEY] for part in parts]
    assert [i["part"] for i in infos] == [0, 1, 2]
    assert len({i["session_id"] for i in infos}) == 1
    assert [i["previous"] for i in infos] == [None, "p.rec", "p.rec.1"]
    assert [part.trailer["reason"] for part in parts if part.trailer] == ["rotated", "rotated", "the command ended"]
    assert [part.trailer.get("next") for part in parts if part.trailer] == ["p.rec.1", "p.rec.2", None]
    # The first part has the session's snapshot; the later ones the shell and
    # LONG, which is alive throughout, and none of the short lives reaped before.
    assert parts[0].snapshot == SNAPSHOT
    for part in parts[1:]:
        assert [(p.pid, p.ppid, p.argv) for p in part.snapshot] == [
            (SHELL, INIT, [b"sh"]),
            (LONG, SHELL, [b"long", b"run"]),
        ]
        assert part.snapshot[1].start_ns == 10 * MS  # the fork's exact time, from the events


def test_a_part_read_alone_shows_a_process_begun_before_it_as_already_running(tmp_path: Path) -> None:
    batches = session_batches(2)
    rec = recorded(tmp_path, RotationOptions(size=1), batches)
    out = tmp_path / "timeline.json"
    assert cli.main(["-r", rec.paths[1], "--timeline", str(LONG), "--json", "-o", str(out)]) == 0
    (life_of_long,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert life_of_long["pre_existing"] is True and life_of_long["end_ns"] is not None


def test_a_loss_report_stays_in_its_part_and_each_trailer_counts_its_own_file(tmp_path: Path) -> None:
    batches = session_batches(3)
    rec = recorder(tmp_path, RotationOptions(size=1))
    rec.write(batches[0])
    rec.lost(20 * MS, 4, 4)
    rec.write(batches[1])
    rec.lost(21 * MS, 2, 2, "signal")
    rec.lost(22 * MS, 3, 7)
    rec.write(batches[2])
    rec.close()
    parts = [open_recording(p) for p in rec.paths]
    kept = [[r for r in part.records() if isinstance(r, LostRecord)] for part in parts]
    assert kept == [
        [LostRecord(20 * MS, 4, 4)],
        [LostRecord(21 * MS, 2, 2, "signal"), LostRecord(22 * MS, 3, 7)],
        [],
    ]
    trailers = [(p.trailer["events"], p.trailer["lost"], p.trailer["lost_by_class"]) for p in parts if p.trailer]
    assert trailers == [
        (len(batches[0]), 4, {"lifecycle": 4, "signal": 0}),
        (len(batches[1]), 5, {"lifecycle": 3, "signal": 2}),
        (len(batches[2]), 0, {"lifecycle": 0, "signal": 0}),
    ]


# --------------------------------------------------------------------------- read back as one session


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unrotated recording of 4,000 short lives (about 1.5 MB: a dozen of
    the reader's blocks, so a replay hands on a dozen batches) and LONG."""
    path = tmp_path_factory.mktemp("full") / "full.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    for batch in session_batches(200, per_batch=20):
        writer.write(batch)
    writer.lost(15 * MS, 3, 3)
    writer.close("the command ended")
    return path


def run(*args: str) -> int:
    return cli.main(list(args))


def output_of(tmp_path: Path, *args: str, name: str = "out") -> str:
    out = tmp_path / name
    assert run(*args, "-o", str(out)) == 0
    return out.read_text()


def rotate(full: Path, directory: Path, *flags: str) -> list[str]:
    directory.mkdir()
    assert run("-r", str(full), "-q", "-w", str(directory / "p.rec"), *flags) == 0
    return sorted(str(p) for p in directory.iterdir())


def test_the_parts_read_back_give_exactly_the_events_of_the_whole_recording(full: Path, tmp_path: Path) -> None:
    parts = rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    assert len(parts) >= 8
    whole = output_of(tmp_path, "-r", str(full), "--json", name="whole")
    assert output_of(tmp_path, "-r", str(tmp_path / "parts"), "--json") == whole
    shuffled = list(parts)
    random.Random(7).shuffle(shuffled)
    repeated = [arg for path in shuffled for arg in ("-r", path)]
    assert output_of(tmp_path, *repeated, "--json", name="repeated") == whole


def test_the_views_see_whole_lives_across_the_parts(full: Path, tmp_path: Path) -> None:
    rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    for view in (["--tree"], ["--summary"], ["--timeline", "--json"]):
        whole = output_of(tmp_path, "-r", str(full), "--color", "never", *view, name="whole")
        assert output_of(tmp_path, "-r", str(tmp_path / "parts"), "--color", "never", *view) == whole
    timeline = output_of(tmp_path, "-r", str(tmp_path / "parts"), "--timeline", str(LONG), "--json")
    (long_life,) = [json.loads(line) for line in timeline.splitlines()]
    assert long_life["forked_ns"] == 10 * MS and long_life["end_ns"] is not None and long_life["reaped_ns"] is not None


def test_a_part_given_twice_is_read_once(full: Path, tmp_path: Path) -> None:
    parts = rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    whole = output_of(tmp_path, "-r", str(full), "--json", name="whole")
    assert output_of(tmp_path, "-r", str(tmp_path / "parts"), "-r", parts[3], "--json") == whole


def test_overlapping_recordings_give_no_event_twice(full: Path, tmp_path: Path) -> None:
    whole = output_of(tmp_path, "-r", str(full), "--json", name="whole")
    copy = tmp_path / "copy.rec"
    assert run("-r", str(full), "-q", "-w", str(copy)) == 0  # another session's file of the same events
    assert output_of(tmp_path, "-r", str(full), "-r", str(copy), "--json") == whole
    assert output_of(tmp_path, "-r", str(copy), "-r", str(full), "--json", name="other way") == whole


def test_a_missing_part_is_warned_about(full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    os.unlink(tmp_path / "parts" / "p.rec.2")
    recordings = open_recordings([str(tmp_path / "parts")])
    assert isinstance(recordings, RecordingSet)
    list(recordings.records())
    assert any("part 3 of its session follows part 1" in w for w in recordings.warnings)


def test_a_copy_of_a_part_is_no_part_of_its_session(full: Path, tmp_path: Path) -> None:
    parts = rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    copy = tmp_path / "copy.rec"
    assert run("-r", parts[1], "-q", "-w", str(copy)) == 0
    assert ROTATION_KEY not in open_recording(str(copy)).header


def test_a_bad_file_among_them_is_named_and_exits_2(
    full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    bad = tmp_path / "parts" / "zz-notes.txt"
    bad.write_text("not a recording\n")
    assert run("-r", str(tmp_path / "parts"), "--json", "-o", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 1: not a proctrace recording" in err and "Traceback" not in err


def test_a_bad_record_in_a_later_part_is_named(full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = rotate(full, tmp_path / "parts", "--rotate-size", "64K")
    lines = Path(parts[4]).read_text().splitlines(keepends=True)
    lines[3] = '{"type":"exec","garbage"\n'
    Path(parts[4]).write_text("".join(lines))
    assert run("-r", str(tmp_path / "parts"), "--json", "-o", str(tmp_path / "out")) == 2
    assert f"{parts[4]}: line 4: " in capsys.readouterr().err


def test_recordings_of_another_boot_are_refused(full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.rec"
    later_boot = Clock(realtime_minus_monotonic_ns=CLOCK.offset_ns + 3600 * SEC)
    writer = RecordingWriter.create(str(other), make_header(later_boot, "ring", {}, SNAPSHOT), force=False)
    writer.close()
    assert run("-r", str(full), "-r", str(other), "--json", "-o", str(tmp_path / "out")) == 2
    assert f"{other}: recorded on another machine or boot than {full}" in capsys.readouterr().err


def test_an_empty_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert run("-r", str(tmp_path / "empty")) == 2
    assert "a directory with no recordings in it" in capsys.readouterr().err


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rotate-size", "1M"], "they need -w FILE"),
        (["--rotate-time", "1h"], "they need -w FILE"),
        (["--keep", "3"], "they need -w FILE"),
        (["-w", "s.rec", "--keep", "3"], "it needs --rotate-size or --rotate-time"),
        (["-w", "s.rec", "--rotate-size", "lots"], "not a size"),
        (["-w", "s.rec", "--rotate-size", "0"], "size must be positive"),
        (["-w", "s.rec", "--rotate-time", "soon"], "not a duration"),
        (["-w", "s.rec", "--rotate-time", "0.5"], "between 1 second and a year"),
        (["-w", "s.rec", "--rotate-size", "1M", "--keep", "0"], "must keep at least one file"),
        (["-w", "s.rec", "--rotate-size", "1M", "--keep", "two"], "not a number of files"),
        (["-r", "a.rec", "b.rec"], "to read several recordings, repeat -r or give -r their directory"),
    ],
)
def test_bad_rotation_options_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_durations_and_sizes_read_as_documented() -> None:
    assert [cli.duration_arg(t) for t in ("30s", "10m", "1h", "2d", "90", "1.5m")] == [30, 600, 3600, 172800, 90, 90]
    args = cli.build_parser().parse_args(["-w", "s.rec", "--rotate-size", "64K", "--rotate-time", "10m", "--keep", "5"])
    assert cli.rotation_options(args) == RotationOptions(size=64 << 10, interval_s=600, keep=5)
    assert cli.rotation_options(cli.build_parser().parse_args(["-w", "s.rec"])) is None
    options = cli.session_options(cli.build_parser().parse_args(["-r", "a.rec", "-r", "b.rec", "-r", "c.rec"]), None)
    assert (options.read_path, options.read_more) == ("a.rec", ("b.rec", "c.rec"))


def test_a_directory_stands_for_its_files_but_not_hidden_ones_or_subdirectories(tmp_path: Path) -> None:
    for name in ("b.rec", "a.rec", ".a.rec.swp"):
        (tmp_path / name).write_text("")
    (tmp_path / "old").mkdir()
    assert recording_paths([str(tmp_path), "x.rec"]) == [str(tmp_path / "a.rec"), str(tmp_path / "b.rec"), "x.rec"]


def test_recordings_that_are_not_parts_are_read_in_the_order_they_started(tmp_path: Path) -> None:
    """Each starts where the other ended: read in the order of their `started`, not of their names."""
    batches = session_batches(2)
    for name, batch, started in (
        ("z.rec", batches[0], "2026-12-02T10:00:00.000000Z"),
        ("a.rec", batches[1], "2026-12-02T11:00:00.000000Z"),
    ):
        writer = RecordingWriter.create(str(tmp_path / name), {**header(), "started": started}, force=False)
        writer.write(batch)
        writer.close()
    recordings = open_recordings([str(tmp_path)])
    assert isinstance(recordings, RecordingSet)
    assert [ev for batch in recordings.events() for ev in batch] == batches[0] + batches[1]
    assert recordings.warnings == [] and recordings.snapshot == SNAPSHOT
