"""tracer/formats/recording.py: the session file, written and read back.

Faults while writing (a full disk, I/O errors, the directory removed) are in
test_recording_faults.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proctrace import __version__
from proctrace.formats import recording
from proctrace.formats.jsonl import event_from_dict, event_json
from proctrace.formats.recording import (
    NO_TRAILER,
    LostRecord,
    Recording,
    RecordingError,
    RecordingWriter,
    make_header,
    open_recording,
)
from proctrace.model.clock import Clock
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CLONE_THREAD,
    CLONE_VM,
    FOLD_PTRACE,
    FOLD_RATE,
    SIGNAL_DELIVER,
    SIGNAL_GENERATE,
    CgroupEvent,
    CredEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    SignalSummaryEvent,
    WaitStatus,
)
from proctrace.model.procsnap import ProcInfo
from proctrace.session.sinks import JsonSink

SEC = 1_000_000_000
CLOCK = Clock(realtime_minus_monotonic_ns=1_700_000_000 * SEC)

# Bytes a process may choose: invalid UTF-8, a would-be surrogate, control
# characters, JSON's own syntax, a terminal escape, valid non-ASCII.
HOSTILE = [
    b"\xff\xfe",
    b"\xed\xb3\xbf",
    b"a\x00b",
    b'"},{"type":"x',
    b"\\u0041\\",
    b"\n\r\t",
    b"\x1b[31mred",
    "caf\u00e9 \u2603".encode(),
    b"",
]


def base(i: int = 0, comm: bytes = b"sh", **kw: object) -> dict:
    fields = dict(ts_ns=2 * SEC + i, pid=300 + i, tgid=300 + i, ppid=1, uid=1000, comm=comm, start_ns=SEC, cpu=i % 2)
    fields.update(kw)
    return fields


def every_kind(i: int = 0, hostile: bytes = b"\xff") -> list[Event]:
    """One event of each kind and variant, in the canonical form that a JSON round trip preserves exactly."""
    return [
        ForkEvent(**base(i, comm=b"sh" + hostile), child_pid=401, child_tgid=401, child_ppid=300, clone_flags=0),
        ForkEvent(**base(i), child_pid=402, child_tgid=300, child_ppid=1, clone_flags=CLONE_THREAD | CLONE_VM),
        ExecEvent(
            **base(i, comm=hostile[:15]),
            filename=b"/tmp/" + hostile,
            argv=[b"prog", hostile, b"", b"a b"],
            argv_truncated=True,
            old_pid=300 + i,
        ),
        ExecEvent(**base(i), filename=b"/nope", argv=[b"nope"], errno=2, filename_truncated=True, old_pid=300 + i),
        ExecEvent(**base(i), filename=b"/bin/t", argv=[], argv_unreadable=True, old_pid=305),
        ExitEvent(**base(i), status=WaitStatus(0x0700), task_exit_code=0x0700, process_exit=True, task_start_ns=SEC),
        ExitEvent(**base(i), status=WaitStatus(0x86), task_exit_code=0x86, process_exit=False, task_start_ns=SEC + 5),
        SignalEvent(
            **base(i), stage=SIGNAL_GENERATE, signo=15, code=0, target_pid=301, target_comm=hostile, group=True
        ),
        SignalEvent(**base(i), stage=SIGNAL_GENERATE, signo=40, code=-6, target_pid=301, result=2),
        SignalEvent(**base(i), stage=SIGNAL_DELIVER, signo=9, code=0, target_pid=300, handler=2, group_exit_signo=15),
        SignalEvent(**base(i), stage=SIGNAL_DELIVER, signo=10, code=0, target_pid=300, handler=1),
        ReapEvent(**base(i), reaped_pid=301, status=WaitStatus(0x0100)),
        ReapEvent(**base(i), reaped_pid=302, status=WaitStatus(0x89)),
        SignalSummaryEvent(
            **base(i), reason=FOLD_PTRACE, signo=17, target_pid=40, target_comm=hostile, count=9, first_ns=SEC
        ),
        SignalSummaryEvent(**base(i), reason=FOLD_RATE, stage=SIGNAL_DELIVER, signo=10, target_pid=300, count=3),
        ExecEvent(
            **base(i, cgroup_id=4242),
            filename=b"/usr/bin/sudo",
            argv=[b"sudo", hostile],
            old_pid=300 + i,
            context=ProcessContext(
                cwd=b"/home/" + hostile,
                exe_dev=2051,
                exe_ino=77,
                creds=ROOT_OF_1000,
                creds_before=USER_1000,
                tty="pts/1",
                cgroup=b"/user.slice/user-1000.slice/session-" + hostile + b".scope",
                env={b"HOME": b"/home/" + hostile, b"type": b"exec", hostile: b""},
            ),
        ),
        CredEvent(
            **base(i),
            syscall="setresuid",
            before=ROOT_OF_1000,
            after=USER_1000,
            groups_before=(0, 27),
            groups_before_count=2,
        ),
        CgroupEvent(**base(i), action="mkdir", target_id=99, path=b"/system.slice/" + hostile + b".service"),
    ]


USER_1000 = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)
ROOT_OF_1000 = Credentials(1000, 0, 0, 0, 1000, 1000, 1000, 1000, (1 << 41) - 1)


def hostile_events() -> list[Event]:
    return [ev for i, h in enumerate(HOSTILE) for ev in every_kind(i, h)]


SNAPSHOT = [
    ProcInfo(1, 0, 0, b"init", [b"/sbin/init", b"splash"], 10 * SEC, 1),
    ProcInfo(200, 1, 1000, b"we\xffird", [b"a\xfe", b"", b"\n"], 20 * SEC, 3),
]


def header(**kw: object) -> dict:
    h = make_header(CLOCK, "ring", {"follow": False, "argv_max": 4096}, SNAPSHOT)
    h.update(kw)
    return h


def record(path: Path, batches: list[list[Event]], lost: dict[int, tuple[int, int, int]] | None = None, **kw):
    """Write a recording: batches in order, a lost report before batch i when lost[i] is given."""
    writer = RecordingWriter.create(str(path), header(), force=kw.pop("force", False))
    for i, batch in enumerate(batches):
        if lost and i in lost:
            writer.lost(*lost[i])
        writer.write(batch)
    if kw.pop("close", True):
        writer.close(kw.pop("reason", "interrupted by SIGINT"))
    return writer


def read_all(path: Path | str) -> tuple[Recording, list[Event]]:
    rec = open_recording(str(path))
    events = [ev for batch in rec.events() for ev in batch]
    return rec, events


def text_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if str(path).endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("ascii").splitlines()


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", ["s.rec", "s.jsonl.gz"])
def test_round_trip_gives_back_identical_events_and_lines(tmp_path: Path, name: str) -> None:
    events = hostile_events()
    path = tmp_path / name
    record(path, [events[:7], events[7:30], events[30:]])
    rec, back = read_all(path)
    assert back == events
    assert [type(ev) for ev in back] == [type(ev) for ev in events]
    lines = text_lines(path)
    assert lines[1:-1] == [event_json(ev, CLOCK) for ev in events]
    assert rec.warnings == []


def test_event_lines_are_what_the_json_sink_writes(tmp_path: Path) -> None:
    events = hostile_events()
    path = tmp_path / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    out = io.StringIO()
    sink = JsonSink(out, CLOCK)
    for target in (writer, sink):
        target.write(events[:5])
        target.lost(3 * SEC, 7, 9)
        target.write(events[5:])
    writer.close()
    assert text_lines(path)[1:-1] == out.getvalue().splitlines()


def test_lost_reports_come_back_in_place(tmp_path: Path) -> None:
    events = hostile_events()
    path = tmp_path / "s.rec"
    record(path, [events[:3], events[3:4], events[4:]], lost={1: (5 * SEC, 4, 4), 2: (6 * SEC, 2, 6)})
    rec = open_recording(str(path))
    items = list(rec.records())
    assert items == [events[:3], LostRecord(5 * SEC, 4, 4), events[3:4], LostRecord(6 * SEC, 2, 6), events[4:]]
    assert rec.lost_records == [LostRecord(5 * SEC, 4, 4), LostRecord(6 * SEC, 2, 6)]
    assert rec.trailer is not None and (rec.trailer["events"], rec.trailer["lost"]) == (len(events), 6)
    assert rec.warnings == []


def test_lost_record_has_the_live_json_shape(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [[]], lost={0: (5 * SEC, 4, 11)})
    assert json.loads(text_lines(path)[1]) == {
        "type": "lost",
        "ts_ns": 5 * SEC,
        "time": CLOCK.iso(5 * SEC),
        "class": "lifecycle",
        "count": 4,
        "total": 11,
    }


def test_a_lost_record_without_a_class_reads_as_lost_lifecycle_events(tmp_path: Path) -> None:
    """Recordings from before signals had a buffer of their own: any event may
    have been lost, so the reader assumes the worst."""
    path = tmp_path / "s.rec"
    record(path, [[]], lost={0: (5 * SEC, 4, 11)})
    lines = text_lines(path)
    old = json.loads(lines[1])
    del old["class"]
    lines[1] = json.dumps(old)
    path.write_text("\n".join(lines) + "\n")
    rec = open_recording(str(path))
    list(rec.records())
    assert rec.lost_records == [LostRecord(5 * SEC, 4, 11, "lifecycle")]


def test_signal_losses_keep_their_class_through_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    writer.lost(5 * SEC, 4, 4, "signal")
    writer.lost(6 * SEC, 1, 1, "lifecycle")
    writer.close("ended")
    rec = open_recording(str(path))
    assert [r for r in rec.records() if isinstance(r, LostRecord)] == [
        LostRecord(5 * SEC, 4, 4, "signal"),
        LostRecord(6 * SEC, 1, 1, "lifecycle"),
    ]
    assert rec.trailer is not None
    assert (rec.trailer["lost"], rec.trailer["lost_by_class"]) == (5, {"lifecycle": 1, "signal": 4})


def test_a_lost_record_of_an_unknown_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [[]], lost={0: (5 * SEC, 4, 11)})
    lines = text_lines(path)
    lines[1] = lines[1].replace('"lifecycle"', '"gossip"')
    path.write_text("\n".join(lines) + "\n")
    assert "line 2: invalid lost record" in read_error(path)


def test_trailer_records_the_totals_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [hostile_events()], lost={0: (SEC, 3, 3)}, reason="command exited")
    trailer = json.loads(text_lines(path)[-1])
    assert trailer["type"] == "trailer"
    assert (trailer["events"], trailer["lost"], trailer["reason"]) == (len(hostile_events()), 3, "command exited")
    assert trailer["ended"].endswith("Z")
    rec, _ = read_all(path)
    assert rec.trailer == trailer


def test_events_can_be_read_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [hostile_events()])
    rec = open_recording(str(path))
    first = [ev for b in rec.events() for ev in b]
    second = [ev for b in rec.events() for ev in b]
    assert first == second == hostile_events()
    assert rec.warnings == []


def test_an_empty_session_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [])
    rec, events = read_all(path)
    assert events == [] and rec.warnings == [] and rec.trailer is not None


def test_batches_are_bounded_so_reading_streams(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    events = [ev for i in range(800) for ev in every_kind(i)]
    record(path, [events])
    sizes = [len(batch) for batch in open_recording(str(path)).events()]
    assert sum(sizes) == len(events)
    assert len(sizes) > 1
    assert max(sizes) * 300 < 2 * recording.READ_CHUNK


# Canonical events: the fields that a JSON round trip keeps (see jsonout).
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
raw = st.binary(max_size=40)


@st.composite
def events(draw: st.DrawFn) -> Event:
    ts = draw(st.integers(0, 2**63 - 1))
    start = draw(u64)
    common = dict(
        ts_ns=ts, pid=draw(u32), tgid=draw(u32), ppid=draw(u32), uid=draw(u32), comm=draw(raw), start_ns=start,
        cpu=draw(st.integers(0, 4095)),
    )  # fmt: skip
    kind = draw(st.sampled_from(["fork", "exec", "exit", "signal", "reap"]))
    if kind == "fork":
        return ForkEvent(
            **common, child_pid=draw(u32), child_tgid=draw(u32), child_ppid=draw(u32), clone_flags=draw(u64)
        )
    if kind == "exec":
        return ExecEvent(
            **common, filename=draw(raw), argv=draw(st.lists(raw, max_size=5)), argv_truncated=draw(st.booleans()),
            filename_truncated=draw(st.booleans()), argv_unreadable=draw(st.booleans()),
            errno=draw(st.integers(0, 200)), old_pid=draw(u32),
        )  # fmt: skip
    if kind == "exit":
        status = draw(st.integers(0, 0xFFFF))
        process_exit = draw(st.booleans())
        task_start = start if process_exit else draw(st.integers(0, ts))
        return ExitEvent(**common, status=WaitStatus(status), task_exit_code=status, process_exit=process_exit,
                         task_start_ns=task_start)  # fmt: skip
    if kind == "signal":
        sig = dict(signo=draw(st.integers(1, 64)), code=draw(st.integers(-(2**31), 2**31 - 1)),
                   target_pid=draw(u32), target_comm=draw(raw))  # fmt: skip
        if draw(st.booleans()):
            return SignalEvent(**common, **sig, stage=SIGNAL_GENERATE, result=draw(st.integers(0, 9)),
                               group=draw(st.booleans()))  # fmt: skip
        return SignalEvent(**common, **sig, stage=SIGNAL_DELIVER, handler=draw(st.integers(0, 2)),
                           group_exit_signo=draw(st.sampled_from([0, 9, 15, 34, 40, 64])))  # fmt: skip
    return ReapEvent(**common, reaped_pid=draw(u32), status=WaitStatus(draw(st.integers(0, 0xFFFF))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(events(), max_size=8), max_size=5), gz=st.booleans())
def test_any_events_round_trip_exactly(tmp_path: Path, batches: list[list[Event]], gz: bool) -> None:
    path = tmp_path / ("p.rec.gz" if gz else "p.rec")
    record(path, batches, force=True)
    rec, back = read_all(path)
    flat = [ev for b in batches for ev in b]
    assert back == flat
    assert text_lines(path)[1:-1] == [event_json(ev, CLOCK) for ev in flat]
    assert rec.warnings == []


# Records are read back by jsonout.event_from_dict, which must be strict: a
# crafted record with an odd value in any field is either refused or gives an
# event whose every field has its proper type. Each example tries every field
# of an event with each odd value, and without it.
_ODD_VALUES = [None, True, False, 0, -1, 7, 2**64, 1.5, "", "1", "7", "\udcff", "\ud800", [], ["a"], [1], {}, {"a": 1}]
_MISSING = object()


@settings(max_examples=100, deadline=None)
@given(ev=events())
def test_odd_field_values_are_refused_or_give_well_typed_events(ev: Event) -> None:
    original = json.loads(event_json(ev, CLOCK))
    proper = [type(getattr(ev, f.name)) for f in fields(ev)]
    for name in original:
        if name == "type":
            continue
        for value in [*_ODD_VALUES, _MISSING]:
            d = dict(original)
            if value is _MISSING:
                del d[name]
            else:
                d[name] = value
            try:
                back = event_from_dict(d)
            except (KeyError, TypeError, ValueError):
                continue
            assert [type(getattr(back, f.name)) for f in fields(back)] == proper, (name, value)


# --------------------------------------------------------------------------- header


def test_header_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    record(path, [])
    h = json.loads(text_lines(path)[0])
    assert list(h)[:3] == ["type", "format", "version"]
    assert (h["type"], h["format"], h["version"]) == ("header", "proctrace-recording", 2)
    assert h["proctrace_version"] == __version__
    assert (h["hostname"], h["kernel"]) == (os.uname().nodename, os.uname().release)
    assert h["boot_offset_ns"] == CLOCK.offset_ns
    assert h["boot_time"] == "2023-11-14T22:13:20.000000Z"
    assert (h["buffer"], h["options"]) == ("ring", {"follow": False, "argv_max": 4096})
    assert h["started"].endswith("Z")
    rec = open_recording(str(path))
    assert rec.header == h
    assert rec.snapshot == SNAPSHOT
    assert rec.clock.offset_ns == CLOCK.offset_ns
    assert rec.clock.iso(2 * SEC) == CLOCK.iso(2 * SEC)


def test_boot_offset_turns_timestamps_into_wall_clock_time(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    clock = Clock()
    writer = RecordingWriter.create(str(path), make_header(clock, "perf", {}, []), force=False)
    now_ts = time.monotonic_ns()
    writer.close()
    rec = open_recording(str(path))
    assert abs(rec.clock.wall_ns(now_ts) - time.time_ns()) < 5 * SEC
    assert rec.header["buffer"] == "perf"


def test_the_writer_sets_the_format_and_version_itself(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    RecordingWriter.create(str(path), header(format="other", version=7, type="x"), force=False).close()
    h = json.loads(text_lines(path)[0])
    assert (h["type"], h["format"], h["version"]) == ("header", "proctrace-recording", 2)


def test_a_header_without_offset_or_snapshot_is_refused_before_creating_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    with pytest.raises(ValueError):
        RecordingWriter.create(str(path), {"snapshot": []}, force=False)
    assert not path.exists()


# --------------------------------------------------------------------------- creating the file safely


def test_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "s.rec"
        record(path, [hostile_events()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_file_is_refused_without_force(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    path.write_bytes(b"precious")
    with pytest.raises(RecordingError, match=f"^{path} exists; use --force to overwrite$"):
        RecordingWriter.create(str(path), header(), force=False)
    assert path.read_bytes() == b"precious"


def test_force_replaces_an_existing_file_with_a_new_0600_one(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    path.write_bytes(b"old content that is longer than nothing" * 100)
    path.chmod(0o644)
    record(path, [hostile_events()], force=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == os.geteuid()
    _, events = read_all(path)
    assert events == hostile_events()


def test_force_never_writes_into_a_hard_link(tmp_path: Path) -> None:
    other = tmp_path / "shadow"
    other.write_bytes(b"root:secret\n")
    path = tmp_path / "s.rec"
    os.link(other, path)
    record(path, [hostile_events()], force=True)
    assert other.read_bytes() == b"root:secret\n"
    assert read_all(path)[1] == hostile_events()


@pytest.mark.parametrize("force", [False, True])
def test_symlink_at_the_path_is_refused(tmp_path: Path, force: bool) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    link = tmp_path / "s.rec"
    link.symlink_to(target)
    with pytest.raises(RecordingError, match="is a symbolic link"):
        RecordingWriter.create(str(link), header(), force=force)
    assert target.read_bytes() == b"precious"
    assert link.is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_dangling_symlink_is_refused_and_nothing_is_created(tmp_path: Path, force: bool) -> None:
    link = tmp_path / "s.rec"
    link.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(RecordingError, match="is a symbolic link"):
        RecordingWriter.create(str(link), header(), force=force)
    assert not (tmp_path / "would-be-created").exists()


def test_a_directory_at_the_path_is_refused_even_with_force(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="is not a regular file"):
        RecordingWriter.create(str(tmp_path), header(), force=True)


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "s.rec"
    with pytest.raises(RecordingError, match=f"cannot create {path}: No such file or directory"):
        RecordingWriter.create(str(path), header(), force=False)


def test_zstd_is_refused_when_writing_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "s.rec.zst"
    with pytest.raises(RecordingError, match="zstd-compressed recordings are not supported"):
        RecordingWriter.create(str(path), header(), force=False)
    assert not path.exists()


# --------------------------------------------------------------------------- gzip and crash safety


def test_gz_recording_is_ordinary_gzip(tmp_path: Path) -> None:
    plain, gz = tmp_path / "s.rec", tmp_path / "s.rec.gz"
    record(plain, [hostile_events()])
    record(gz, [hostile_events()])
    with gzip.open(gz, "rt", encoding="ascii") as f:
        unzipped = f.read().splitlines()
    # Only the times of the header and trailer differ.
    assert unzipped[1:-1] == text_lines(plain)[1:-1]
    assert len(gz.read_bytes()) < len(plain.read_bytes()) / 3


def test_a_gzip_recording_under_another_name_is_still_read(tmp_path: Path) -> None:
    gz = tmp_path / "s.rec.gz"
    record(gz, [hostile_events()])
    renamed = tmp_path / "s.rec"
    gz.rename(renamed)
    assert read_all(renamed)[1] == hostile_events()


def test_plain_data_reaches_the_file_with_every_batch(tmp_path: Path) -> None:
    path = tmp_path / "s.rec"
    writer = record(path, [hostile_events()[:3]], close=False)
    rec, events = read_all(path)
    assert events == hostile_events()[:3]
    assert rec.warnings == [f"{path}: {NO_TRAILER}"]
    writer.close()


def test_gzip_data_reaches_the_file_within_the_flush_interval(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec.gz"
    writer = record(path, [hostile_events()[:3]], close=False)
    monkeypatch.setattr(recording, "FLUSH_INTERVAL_S", 0.0)
    writer.status("tick")  # what the live loop calls twice a second
    rec, events = read_all(path)
    assert events == hostile_events()[:3]
    assert any("gzip stream is cut off" in w for w in rec.warnings)
    assert any("has no trailer" in w for w in rec.warnings)
    writer.close()
    assert read_all(path)[0].warnings == []


def test_gzip_flushes_are_rate_limited(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec.gz"
    monkeypatch.setattr(recording, "FLUSH_INTERVAL_S", 3600.0)
    writer = record(path, [], close=False)
    size = path.stat().st_size
    for _ in range(10):
        writer.write(hostile_events()[:2])
    assert path.stat().st_size == size  # compressed data waits in zlib
    writer.close()
    assert len(read_all(path)[1]) == 20


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_recording import every_kind, header
    from proctrace.formats import recording
    recording.FLUSH_INTERVAL_S = 0.05
    w = recording.RecordingWriter.create(sys.argv[1], header(), force=False)
    for i in range(20):
        w.write(every_kind(i))
        time.sleep(0.01)
    time.sleep(0.1)
    w.status("")  # flushes gzip: every_kind(0..19) are in the file
    w.write(every_kind(99))  # written, but for gzip perhaps not yet flushed
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("name", ["k.rec", "k.rec.gz"])
def test_a_recording_cut_by_sigkill_reads_back_up_to_its_last_record(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    tests = str(Path(__file__).parent)
    script = KILLED_WRITER.format(root=str(Path(tests).parent), tests=tests)
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rec, events = read_all(path)
    expected = [ev for i in range(20) for ev in every_kind(i)]
    assert events[: len(expected)] == expected
    assert events[len(expected) :] == every_kind(99)[: len(events) - len(expected)]
    assert rec.warnings[-1] == f"{path}: {NO_TRAILER}"


# --------------------------------------------------------------------------- bad input


def valid_recording(tmp_path: Path, name: str = "v.rec") -> Path:
    path = tmp_path / name
    record(path, [hostile_events()[:6]], lost={0: (SEC, 1, 1)})
    return path


def write_lines(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_bytes(("\n".join(lines) + end).encode("utf-8", "surrogateescape"))
    return path


def read_error(path: Path) -> str:
    with pytest.raises(RecordingError) as info:
        read_all(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    assert read_error(tmp_path / "none.rec").endswith("No such file or directory")


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    assert "Is a directory" in read_error(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "e.rec"
    path.write_bytes(b"")
    assert read_error(path) == f"{path}: empty file, not a proctrace recording"


def test_empty_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "e.rec.gz"
    path.write_bytes(gzip.compress(b""))
    assert read_error(path) == f"{path}: empty file, not a proctrace recording"


def test_text_garbage(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "g.rec", ["hello world", "second line"])
    assert read_error(path) == f"{path}: line 1: not a proctrace recording (no header)"


def test_binary_data(tmp_path: Path) -> None:
    path = tmp_path / "b.rec"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    assert read_error(path) == f"{path}: binary data at byte 0, not a proctrace recording"


def test_json_that_is_not_a_recording(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "j.rec", ['{"type":"fork","pid":1}'])
    assert read_error(path) == f"{path}: line 1: not a proctrace recording (no proctrace-recording header)"
    path = write_lines(tmp_path / "j2.rec", ['{"type":"header","format":"other","version":1}'])
    assert "line 1: not a proctrace recording" in read_error(path)


def test_json_output_of_the_live_tracer_is_not_a_recording(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "live.json", [event_json(ev, CLOCK) for ev in hostile_events()])
    assert read_error(path) == f"{path}: line 1: not a proctrace recording (no proctrace-recording header)"


def test_a_header_that_is_not_json(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.rec", ['{"type":"header",,}', "{}"])
    assert read_error(path) == f"{path}: line 1: not a proctrace recording (the header is not valid JSON)"


def test_an_incomplete_header(tmp_path: Path) -> None:
    path = tmp_path / "h.rec"
    path.write_bytes(valid_recording(tmp_path).read_bytes()[:60])
    assert read_error(path) == (
        f"{path}: line 1: the header is incomplete (the recording was cut off while it was written)"
    )


def test_a_header_alone_without_its_newline_is_an_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "h.rec"
    path.write_bytes(valid_recording(tmp_path).read_bytes().split(b"\n")[0])
    rec, events = read_all(path)
    assert events == [] and rec.snapshot == SNAPSHOT
    assert rec.warnings == [f"{path}: {NO_TRAILER}"]


def modified_header(tmp_path: Path, **changes: object) -> Path:
    lines = text_lines(valid_recording(tmp_path))
    h = json.loads(lines[0])
    h.update(changes)
    for key, value in changes.items():
        if value is ...:
            del h[key]
    return write_lines(tmp_path / "m.rec", [json.dumps(h), *lines[1:]])


def test_a_future_version(tmp_path: Path) -> None:
    path = modified_header(tmp_path, version=3)
    assert read_error(path) == (
        f"{path}: written by a newer proctrace (recording format version 3; this proctrace reads version 2): "
        "upgrade proctrace to read it"
    )


def test_a_version_1_recording_reads_with_unknown_cgroups_and_no_contexts(tmp_path: Path) -> None:
    # Version 1 events had no cgroup_id and their execs no context fields.
    events = [ev for ev in every_kind() if not isinstance(ev, (CredEvent, CgroupEvent))]
    for ev in events:
        ev.cgroup_id = 0
        if isinstance(ev, ExecEvent):
            ev.context = None
    lines = [json.loads(event_json(ev, CLOCK)) for ev in events]
    for d in lines:
        del d["cgroup_id"]
    h = {**header(), "version": 1}
    path = write_lines(tmp_path / "v1.rec", [json.dumps(h), *(json.dumps(d) for d in lines)])
    _, back = read_all(path)
    assert back == events
    assert all(ev.cgroup_id == 0 for ev in back)
    assert [ev.context for ev in back if isinstance(ev, ExecEvent)] == [None] * 4


def test_nested_objects_of_a_context_or_cred_event_parse_in_blocks(tmp_path: Path, monkeypatch) -> None:
    # The block parser's object hook sees creds_before, env, before and after
    # too; they must not send every block down the slow line-by-line path.
    path = tmp_path / "n.rec"
    events = [ev for ev in every_kind() if isinstance(ev, CredEvent) or (isinstance(ev, ExecEvent) and ev.context)]
    for ev in events:
        if isinstance(ev, ExecEvent):  # an env variable named "type" would (rightly) take the slow path
            ev.context = ProcessContext(cwd=b"/", creds_before=USER_1000, env={b"HOME": b"/root"})
    record(path, [events * 3])
    slow = []
    parse_line = recording._Parser.parse_line
    monkeypatch.setattr(recording._Parser, "parse_line", lambda self, *a: slow.append(a) or parse_line(self, *a))
    _, back = read_all(path)
    assert back == events * 3
    assert slow == []


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, None, ...])
def test_an_unknown_version(tmp_path: Path, version: object) -> None:
    path = modified_header(tmp_path, version=version)
    shown = None if version is ... else version
    assert read_error(path) == f"{path}: line 1: unknown recording format version {shown!r}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"boot_offset_ns": "x"}, "boot_offset_ns must be an integer"),
        ({"boot_offset_ns": 2**70}, "boot_offset_ns must be an integer"),
        ({"boot_offset_ns": ...}, "boot_offset_ns must be an integer"),
        ({"snapshot": {}}, "snapshot must be a list"),
        ({"snapshot": [{"pid": 1}]}, "invalid snapshot entry 0: missing 'ppid'"),
        ({"snapshot": [SNAPSHOT[0].to_dict(), 5]}, "invalid snapshot entry 1: not an object"),
        ({"snapshot": [{**SNAPSHOT[0].to_dict(), "comm": 5}]}, "invalid snapshot entry 0"),
    ],
)
def test_an_invalid_header(tmp_path: Path, change: dict, message: str) -> None:
    path = modified_header(tmp_path, **change)
    error = read_error(path)
    assert error.startswith(f"{path}: line 1: ") and message in error


def test_gz_name_on_data_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "p.rec.gz"
    path.write_bytes(valid_recording(tmp_path).read_bytes())
    assert read_error(path) == f"{path}: not gzip data (byte 0), although the name ends in .gz"


@pytest.mark.parametrize(
    ("magic", "name"), [(b"\xfd7zXZ\x00\x00", "xz"), (b"BZh91AY&SY", "bzip2")]
)  # fmt: skip
def test_other_compressions_are_named(tmp_path: Path, magic: bytes, name: str) -> None:
    path = tmp_path / "c.rec"
    path.write_bytes(magic + bytes(100))
    assert read_error(path) == f"{path}: {name}-compressed data (byte 0); proctrace reads plain and .gz recordings"


@pytest.mark.parametrize("name", ["z.rec.zst", "z.rec"])
def test_zstd_is_refused_when_reading(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(50) if name == "z.rec" else valid_recording(tmp_path).read_bytes())
    message = read_error(path)
    assert "zstd-compressed recordings are not supported" in message and "zstd -d" in message


def test_corrupt_gzip_data_names_the_byte(tmp_path: Path) -> None:
    gz = tmp_path / "c.rec.gz"
    record(gz, [[ev for i in range(300) for ev in every_kind(i)]])
    data = bytearray(gz.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)
    gz.write_bytes(bytes(data))
    message = read_error(gz)
    # Where zlib notices depends on the bits; garbage it decodes first is caught as JSON.
    assert "corrupt gzip data after byte" in message or f"{gz}: line " in message


def test_a_gzip_header_with_an_unknown_method(tmp_path: Path) -> None:
    gz = tmp_path / "c.rec.gz"
    record(gz, [hostile_events()])
    data = bytearray(gz.read_bytes())
    data[2] = 9
    gz.write_bytes(bytes(data))
    assert read_error(gz) == (
        f"{gz}: corrupt gzip data after byte 0: Error -3 while decompressing data: unknown compression method"
    )


def test_corrupt_gzip_checksum(tmp_path: Path) -> None:
    gz = tmp_path / "c.rec.gz"
    record(gz, [hostile_events()])
    data = bytearray(gz.read_bytes())
    data[-8] ^= 0xFF  # the CRC32
    gz.write_bytes(bytes(data))
    assert "corrupt gzip data" in read_error(gz)


def with_line(tmp_path: Path, index: int, line: str, replace: bool = True) -> Path:
    lines = text_lines(valid_recording(tmp_path))
    lines[index : index + replace] = [line]
    return write_lines(tmp_path / "w.rec", lines)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"type":"fork",', "line 3: not valid JSON"),
        ("[1, 2]", "line 3: not a record (a JSON object)"),
        ("", "line 3: not valid JSON"),
        ('{"type":"fork","pid":1}', "line 3: invalid fork record: missing 'ts_ns'"),
        ('{"type":"lost","ts_ns":1}', "line 3: invalid lost record: missing 'count'"),
        ('{"type":"lost","ts_ns":-1,"count":1,"total":1}', "line 3: invalid lost record"),
        ('{"type":"trailer","events":"3","lost":0}', "line 3: invalid trailer record"),
        ('{"type":"mystery","ts_ns":1}', "line 3: unknown record type 'mystery'"),
        ('{"type":["fork"]}', "line 3: unknown record type ['fork']"),
        ('{"ts_ns":1}', "line 3: a record without a type"),
        ('{"type":"header","format":"proctrace-recording","version":1}', "line 3: a second header"),
        ("\x00\x01\x02 binary", "line 3: binary data, not a JSON record"),
        ("[" * 100_000, "line 3: not a record (nested too deeply)"),
        ('{"pid":' + "9" * 5000 + "}", "line 3: not valid JSON"),
    ],
)
def test_an_invalid_record_names_its_line(tmp_path: Path, line: str, message: str) -> None:
    path = with_line(tmp_path, 2, line, replace=False)
    error = read_error(path)
    assert error.startswith(f"{path}: {message}"), error


def test_an_event_with_a_wrong_field_names_its_line(tmp_path: Path) -> None:
    lines = text_lines(valid_recording(tmp_path))
    d = json.loads(lines[4])
    d["comm"] = 5
    lines[4] = json.dumps(d)
    path = write_lines(tmp_path / "w.rec", lines)
    assert read_error(path).startswith(f"{path}: line 5: invalid {d['type']} record")


def test_an_out_of_range_timestamp_is_refused(tmp_path: Path) -> None:
    lines = text_lines(valid_recording(tmp_path))
    d = json.loads(lines[4])
    d["ts_ns"] = 2**64
    lines[4] = json.dumps(d)
    path = write_lines(tmp_path / "w.rec", lines)
    assert "line 5: invalid" in read_error(path)


def test_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = valid_recording(tmp_path)
    data = path.read_bytes()
    at = data.index(b"\n", data.index(b"\n") + 1) + 5  # inside line 3
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    assert read_error(path) == f"{path}: line 3, byte {at}: binary data, not a proctrace recording"


def test_a_record_after_the_trailer(tmp_path: Path) -> None:
    lines = text_lines(valid_recording(tmp_path))
    path = write_lines(tmp_path / "w.rec", [*lines, lines[3]])
    assert read_error(path) == f"{path}: line {len(lines) + 1}: a record after the trailer (line {len(lines)})"


def test_a_record_after_the_trailer_in_a_later_block(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(recording, "READ_CHUNK", 64)
    lines = text_lines(valid_recording(tmp_path))
    path = write_lines(tmp_path / "w.rec", [*lines, lines[3], lines[3]])
    assert read_error(path) == f"{path}: line {len(lines) + 1}: a record after the trailer (line {len(lines)})"


def test_an_overlong_line_is_refused_without_reading_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(recording, "MAX_LINE", 2 << 20)
    lines = text_lines(valid_recording(tmp_path))
    path = write_lines(tmp_path / "w.rec", [lines[0], "{" + " " * (3 << 20) + "}"])
    assert read_error(path) == f"{path}: line 2: longer than 2 MiB: not a proctrace recording"


def test_lines_that_only_parse_together_are_refused(tmp_path: Path) -> None:
    """Lines that, joined into one JSON array, would give one valid record per
    line: two records on line 2, and a record split over lines 3 and 4."""
    events = [json.loads(event_json(ev, CLOCK)) for ev in every_kind()[:3]]
    two = json.dumps(events[0]) + "," + json.dumps(events[1])
    outer = json.dumps({**events[2], "time": ["x"]})
    first_half, second_half = outer[: outer.index('"x"')], outer[outer.index('"x"') + 3 :]
    inner = json.dumps(events[0])
    lines = text_lines(valid_recording(tmp_path))
    path = write_lines(tmp_path / "w.rec", [lines[0], two, first_half + "1", inner + second_half])
    assert read_error(path).startswith(f"{path}: line 2: not valid JSON")


# --------------------------------------------------------------------------- truncation and warnings


def test_a_truncated_final_record_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.rec"
    record(path, [hostile_events()], close=False)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # cut inside the last event
    rec, events = read_all(path)
    assert events == hostile_events()[:-1]
    n = len(data.split(b"\n")) - 1
    assert rec.warnings == [
        f"{path}: line {n}: the last record is incomplete (cut off mid-write); "
        "skipped it and read everything before it",
        f"{path}: {NO_TRAILER}",
    ]


def test_a_final_record_missing_only_its_newline_is_used(tmp_path: Path) -> None:
    path = tmp_path / "t.rec"
    record(path, [hostile_events()])
    path.write_bytes(path.read_bytes()[:-1])
    rec, events = read_all(path)
    assert events == hostile_events() and rec.warnings == [] and rec.trailer is not None


def test_a_truncated_gzip_file_reads_up_to_its_last_complete_record(tmp_path: Path) -> None:
    gz = tmp_path / "t.rec.gz"
    events = [ev for i in range(400) for ev in every_kind(i)]
    record(gz, [events])
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size * 2 // 3])
    rec, back = read_all(gz)
    assert 0 < len(back) < len(events)
    assert back == events[: len(back)]
    assert any("gzip stream is cut off" in w for w in rec.warnings)
    assert any("the last record is incomplete" in w for w in rec.warnings)
    assert rec.warnings[-1].endswith(NO_TRAILER)


def test_a_missing_trailer_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.rec"
    record(path, [hostile_events()], close=False)
    rec, events = read_all(path)
    assert events == hostile_events()
    assert rec.trailer is None
    assert rec.warnings == [f"{path}: {NO_TRAILER}"]


def test_a_trailer_that_disagrees_with_the_events_is_a_warning(tmp_path: Path) -> None:
    lines = text_lines(valid_recording(tmp_path))
    path = write_lines(tmp_path / "w.rec", [*lines[:3], *lines[4:]])
    rec, _ = read_all(path)
    assert rec.warnings == [f"{path}: the trailer counts 6 events but the recording holds 5"]


# --------------------------------------------------------------------------- any input: read or RecordingError


def read_or_refuse(path: Path) -> None:
    try:
        rec = open_recording(str(path))
        for item in rec.records():
            assert isinstance(item, (list, LostRecord))
            if isinstance(item, list):
                assert all(isinstance(ev, Event) and 0 <= ev.ts_ns < 2**63 for ev in item)
    except RecordingError as exc:
        assert str(path) in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), name=st.sampled_from(["a.rec", "a.rec.gz"]))
def test_arbitrary_bytes_read_or_raise_recording_error(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    read_or_refuse(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(0, 10**6),
    where=st.integers(0, 10**6),
    insert=st.binary(max_size=20) | st.sampled_from([b"\n", b"{", b"}", b",", b'"', b"[", b"]", b"\\", b"\n{"]),
    gz=st.booleans(),
)
def test_damaged_recordings_read_or_raise_recording_error(
    tmp_path: Path, cut: int, where: int, insert: bytes, gz: bool
) -> None:
    path = tmp_path / ("d.rec.gz" if gz else "d.rec")
    if not path.exists():
        record(path, [hostile_events()[:8]], lost={0: (SEC, 1, 1)})
    data = path.read_bytes()
    where %= len(data) + 1
    damaged = (data[:where] + insert + data[where:])[: len(data) + len(insert) - cut % 50]
    bad = tmp_path / ("x.rec.gz" if gz else "x.rec")
    bad.write_bytes(damaged)
    read_or_refuse(bad)


@st.composite
def tricky_lines(draw: st.DrawFn) -> list[str]:
    """Lines built from pieces of records, to catch the block parser reading
    something per-line parsing would not."""
    recs = [event_json(ev, CLOCK) for ev in every_kind()]
    pieces = st.sampled_from(
        [*recs[:3], '{"type":"lost","ts_ns":1,"count":1,"total":1}', "{", "}", "[", "]", ",", '"', "1", "{}", '"time":',
         '"argv":[', '{"type":"fork"', recs[0][:-1], recs[0][1:], recs[2][:40], recs[2][40:]]
    )  # fmt: skip
    return draw(st.lists(st.lists(pieces, min_size=1, max_size=4).map("".join), min_size=1, max_size=6))


@settings(max_examples=500, deadline=None)
@given(lines=tricky_lines())
def test_block_parsing_agrees_with_parsing_each_line(lines: list[str]) -> None:
    parser = recording._Parser("x")
    try:
        expected = [parser.parse_line(line, i + 2) for i, line in enumerate(lines)]
    except RecordingError as exc:
        with pytest.raises(RecordingError) as info:
            parser.parse(lines, 2)
        assert str(info.value) == str(exc)
        return
    assert parser.parse(lines, 2)[0] == expected


# --------------------------------------------------------------------------- speed
