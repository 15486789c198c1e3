"""tracer/formats/recording.py when writing goes wrong: a full disk, I/O errors, the
recording's directory or file removed while recording.

The full-disk tests mount a 64 KiB tmpfs and need root; they skip, saying
why, where mounting is not allowed. The other faults are injected.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from proctrace.formats import recording
from proctrace.formats.recording import NO_TRAILER, RecordingError, RecordingWriter, open_recording
from proctrace.model.events import Event
from proctrace.model.procsnap import ProcInfo
from test_recording import SNAPSHOT, every_kind, header, read_all

from tests.environment import requires


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    requires(result.returncode == 0, f"cannot mount a tmpfs to fill (needs root): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def fill(writer: RecordingWriter, limit: int = 100_000) -> tuple[list[Event], RecordingError]:
    """Write batches until the writer fails; returns the events of the batches that succeeded."""
    written: list[Event] = []
    for i in range(limit):
        batch = every_kind(i)
        try:
            writer.write(batch)
        except RecordingError as exc:
            return written, exc
        written += batch
    raise AssertionError("the disk never filled up")


@pytest.mark.parametrize("name", ["s.rec", "s.rec.gz"])
def test_a_full_disk_is_a_clear_error_and_the_file_reads_back_to_its_last_record(
    tiny_disk: Path, name: str, monkeypatch
) -> None:
    monkeypatch.setattr(recording, "FLUSH_INTERVAL_S", 0.0)  # gzip: a sync point after every batch
    path = tiny_disk / name
    writer = RecordingWriter.create(str(path), header(), force=False)
    written, error = fill(writer)
    assert str(error) == (
        f"{path}: cannot write the recording: the disk is full; "
        f"it holds the session up to its last complete record ({len(written)} events)"
    )
    rec, events = read_all(path)
    assert events == written
    assert rec.warnings[-1] == f"{path}: {NO_TRAILER}"
    assert not any("incomplete" in w for w in rec.warnings)  # cut back to a record boundary


def test_after_a_failure_the_writer_refuses_and_closes_quietly(tiny_disk: Path) -> None:
    path = tiny_disk / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    written, _ = fill(writer)
    with pytest.raises(RecordingError, match="the disk is full"):
        writer.write(every_kind())
    with pytest.raises(RecordingError, match="the disk is full"):
        writer.lost(5, 1, 1)
    writer.close()  # releases the file; no trailer, no second error
    writer.close()
    assert read_all(path)[1] == written


def test_a_header_that_does_not_fit_leaves_no_file(tiny_disk: Path) -> None:
    path = tiny_disk / "s.rec"
    big = [ProcInfo(i, 1, 0, b"x", [b"y" * 1000], 0, 1) for i in range(100)]
    with pytest.raises(RecordingError, match="the disk is full"):
        RecordingWriter.create(str(path), header(snapshot=[p.to_dict() for p in big]), force=False)
    assert not path.exists()


# --------------------------------------------------------------------------- injected write errors


class FailingWrites:
    """os.write that fails for one descriptor after `allow` more bytes, having
    written what fits first, as a filling disk does."""

    def __init__(self, monkeypatch, err: int) -> None:
        self.fd = -1
        self.allow = 0
        self.err = err
        self._real = os.write
        monkeypatch.setattr(os, "write", self)

    def __call__(self, fd: int, data) -> int:
        if fd != self.fd:
            return self._real(fd, data)
        if self.allow <= 0:
            raise OSError(self.err, os.strerror(self.err))
        n = self._real(fd, bytes(data)[: self.allow])
        self.allow -= n
        return n


def writer_with_faults(path: Path, monkeypatch, err: int) -> tuple[RecordingWriter, FailingWrites]:
    faults = FailingWrites(monkeypatch, err)
    writer = RecordingWriter.create(str(path), header(), force=False)
    faults.fd = writer._fd
    faults.allow = 10**9
    return writer, faults


def test_an_io_error_is_a_recording_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec"
    writer, faults = writer_with_faults(path, monkeypatch, errno.EIO)
    writer.write(every_kind(0))
    faults.allow = 0
    with pytest.raises(RecordingError) as info:
        writer.write(every_kind(1))
    assert str(info.value) == (
        f"{path}: cannot write the recording: Input/output error; "
        f"it holds the session up to its last complete record ({len(every_kind(0))} events)"
    )
    writer.close()
    assert read_all(path)[1] == every_kind(0)


def test_a_record_written_in_part_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec"
    writer, faults = writer_with_faults(path, monkeypatch, errno.ENOSPC)
    writer.write(every_kind(0))
    faults.allow = 700  # part of the next batch, ending inside a record
    with pytest.raises(RecordingError, match="the disk is full"):
        writer.write(every_kind(1))
    assert path.read_bytes().endswith(b"\n")
    rec, events = read_all(path)
    assert events == every_kind(0)
    assert rec.warnings == [f"{path}: {NO_TRAILER}"]


def test_a_full_disk_when_writing_the_trailer(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec.gz"
    writer, faults = writer_with_faults(path, monkeypatch, errno.ENOSPC)
    monkeypatch.setattr(recording, "FLUSH_INTERVAL_S", 0.0)
    writer.write(every_kind(0))
    faults.allow = 0
    with pytest.raises(RecordingError, match="the disk is full"):
        writer.close("SIGTERM")
    with pytest.raises(OSError):
        os.fstat(faults.fd)  # closed all the same
    rec, events = read_all(path)
    assert events == every_kind(0)
    assert rec.warnings[-1] == f"{path}: {NO_TRAILER}"


# --------------------------------------------------------------------------- the file or directory removed


def test_the_directory_removed_mid_recording_is_an_error(tmp_path: Path, monkeypatch) -> None:
    """Writes to a file whose directory is gone still succeed on Linux, into a
    file nobody can ever open: the recording is lost, so say so."""
    directory = tmp_path / "session"
    directory.mkdir()
    path = directory / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    writer.write(every_kind(0))
    shutil.rmtree(directory)
    monkeypatch.setattr(recording, "CHECK_INTERVAL_S", 0.0)
    with pytest.raises(RecordingError) as info:
        writer.write(every_kind(1))
    assert str(info.value) == f"{path}: the recording's directory was removed; the recording is lost"
    with pytest.raises(RecordingError, match="directory was removed"):
        writer.write(every_kind(2))
    writer.close()


def test_the_directory_removed_is_noticed_by_the_status_tick(tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "session"
    directory.mkdir()
    writer = RecordingWriter.create(str(directory / "s.rec"), header(), force=False)
    shutil.rmtree(directory)
    monkeypatch.setattr(recording, "CHECK_INTERVAL_S", 0.0)
    with pytest.raises(RecordingError, match="directory was removed"):
        writer.status("1 events/s")
    writer.close()


def test_the_directory_is_checked_at_most_once_per_interval(tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "session"
    directory.mkdir()
    writer = RecordingWriter.create(str(directory / "s.rec"), header(), force=False)
    monkeypatch.setattr(recording, "CHECK_INTERVAL_S", 3600.0)
    shutil.rmtree(directory)
    writer.write(every_kind(0))  # not noticed yet: no stat per batch
    with pytest.raises(RecordingError, match="directory was removed"):
        writer.close()  # but closing always checks


def test_the_file_deleted_mid_recording_is_an_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    path.unlink()
    monkeypatch.setattr(recording, "CHECK_INTERVAL_S", 0.0)
    with pytest.raises(RecordingError) as info:
        writer.write(every_kind(0))
    assert str(info.value) == f"{path}: the recording was deleted while recording; it is lost"
    writer.close()


def test_a_file_renamed_mid_recording_keeps_recording(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    writer.write(every_kind(0))
    moved = tmp_path / "moved.rec"
    path.rename(moved)
    monkeypatch.setattr(recording, "CHECK_INTERVAL_S", 0.0)
    writer.write(every_kind(1))
    writer.close()
    rec = open_recording(str(moved))
    assert [ev for b in rec.events() for ev in b] == every_kind(0) + every_kind(1)
    assert rec.warnings == [] and rec.snapshot == SNAPSHOT


def test_a_read_error_mid_recording_is_a_recording_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.rec"
    writer = RecordingWriter.create(str(path), header(), force=False)
    writer.write(every_kind(0))
    writer.close()
    rec = open_recording(str(path))

    class FailingDisk(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(recording, "_open_for_reading", lambda path: FailingDisk())
    with pytest.raises(RecordingError) as info:
        list(rec.records())
    assert str(info.value) == f"cannot read {path}: Input/output error"
