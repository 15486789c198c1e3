"""Program images without the kernel: finding the map references bcc wrote
into the instructions, patching them, the file format, and which cache files
are trusted."""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import pytest
from proctrace.kernel.image import (
    LD_IMM64,
    AttachSpec,
    ImageError,
    MapSpec,
    ProgramImage,
    ProgramSpec,
    _evict,
    _patched,
    cache_file,
    image_key,
    map_references,
    read_cached,
    write_cached,
)

from tests.environment import requires

INSN = struct.Struct("<BBhi")
EXIT = INSN.pack(0x95, 0, 0, 0)
MOV_R0_0 = INSN.pack(0xB7, 0, 0, 0)


def ld_map(dst: int, src_kind: int, fd: int) -> bytes:
    """The 16-byte load of a map's address, as bcc emits it: imm = the map's descriptor."""
    return INSN.pack(LD_IMM64, (src_kind << 4) | dst, 0, fd) + INSN.pack(0, 0, 0, 0)


def test_map_references_are_the_pseudo_map_loads_and_only_those() -> None:
    plain_ld64 = INSN.pack(LD_IMM64, 1, 0, 77) + INSN.pack(0, 0, 0, 0)  # a 64-bit constant, not a map
    insns = MOV_R0_0 + ld_map(1, 1, 5) + plain_ld64 + ld_map(2, 2, 9) + EXIT
    assert map_references(insns) == [(1, 5), (5, 9)]


def test_the_second_half_of_a_16_byte_load_is_never_read_as_an_instruction() -> None:
    # Its bytes look like a map load, but they are the upper half of the constant before
    fake_second_half = INSN.pack(LD_IMM64, 1 << 4, 0, 42)
    insns = INSN.pack(LD_IMM64, 0, 0, 1) + fake_second_half + EXIT
    assert map_references(insns) == []


def image() -> ProgramImage:
    insns = MOV_R0_0 + ld_map(1, 1, 5) + ld_map(2, 1, 6) + EXIT
    program = ProgramSpec("tracepoint__sched__sched_process_fork", 5, insns, ((1, 0), (3, 1)))
    maps = (MapSpec("events", 27, 0, 0, 1 << 22, 0), MapSpec("followed", 9, 4, 1, 65536, 0))
    return ProgramImage("k1", "GPL", maps, (program,), (AttachSpec(0, "sched:sched_process_fork", False),))


def test_loading_writes_each_maps_new_descriptor_where_the_old_one_was() -> None:
    patched = _patched(image().programs[0], [31, 32])
    assert map_references(patched) == [(1, 31), (3, 32)]
    assert patched[:8] == MOV_R0_0 and patched[-8:] == EXIT  # nothing else changes


def test_an_image_reads_back_as_written() -> None:
    original = image()
    assert ProgramImage.from_json(original.to_json()) == original


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(version=99),
        lambda d: d["programs"][0][3].append([2, 7]),  # a map that does not exist
        lambda d: d["programs"][0][3].append([4, 0]),  # not at a map load: the second half of one
        lambda d: d["attachments"].append([3, "sched:x", False]),  # a program that does not exist
        lambda d: d.pop("maps"),
    ],
)
def test_a_damaged_image_is_refused_before_the_kernel_sees_it(damage) -> None:
    import json

    d = json.loads(image().to_json())
    damage(d)
    with pytest.raises(ImageError):
        ProgramImage.from_json(json.dumps(d))


def test_the_key_changes_with_the_source(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(b"x" * 10)
    assert image_key("a", btf) == image_key("a", btf)
    assert image_key("a", btf) != image_key("b", btf)
    btf.write_bytes(b"x" * 11)  # another kernel build
    assert image_key("a", btf) != image_key("a", tmp_path / "other")


@pytest.fixture
def cached(tmp_path: Path) -> tuple[Path, Path]:
    """A cache directory holding image() under key k1: (the directory, the file)."""
    requires(os.geteuid() == 0, "needs root: the cache trusts only root's files")
    cache = tmp_path / "cache"
    write_cached(image(), cache)
    path = cache_file("k1", cache)
    assert path is not None
    return cache, path


def test_the_cache_keeps_an_image_for_root_alone(cached: tuple[Path, Path]) -> None:
    cache, path = cached
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_cached("k1", cache) == image()
    assert read_cached("k2", cache) is None  # another compile


def test_a_cache_file_others_could_have_written_is_not_loaded(cached: tuple[Path, Path]) -> None:
    cache, path = cached
    path.chmod(0o666)
    assert read_cached("k1", cache) is None
    path.chmod(0o600)
    os.chown(path, 65534, 65534)  # nobody's
    assert read_cached("k1", cache) is None
    os.chown(path, 0, 0)
    cache.chmod(0o777)  # a directory anyone may replace files in
    assert read_cached("k1", cache) is None


def test_a_damaged_cache_file_is_no_image(cached: tuple[Path, Path]) -> None:
    cache, path = cached
    path.write_text(path.read_text()[:-20])
    assert read_cached("k1", cache) is None


def test_the_cache_keeps_the_images_used_last_and_drops_the_rest(tmp_path: Path) -> None:
    requires(os.geteuid() == 0, "needs root: the cache trusts only root's files")
    cache = tmp_path / "cache"
    base = image()
    for i in range(5):
        write_cached(dataclasses.replace(base, key=f"k{i}"), cache)
        path = cache_file(f"k{i}", cache)
        assert path is not None
        os.utime(path, ns=(i * 10**9, i * 10**9))  # written in this order, a second apart
    assert read_cached("k0", cache) is not None  # the oldest, used now: kept
    _evict(cache, keep=3)
    kept = sorted(p.name for p in cache.glob("program-*.json"))
    assert kept == ["program-k0.json", "program-k3.json", "program-k4.json"]
