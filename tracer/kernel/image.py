"""The compiled programs as data: made once per kernel and program, loaded
without a compiler ever after.

What bcc's compile produces, and all the kernel needs, is each program's
instructions, its type, the maps it names and where it attaches. The map
references are the one thing tied to the process that compiled it: bcc writes
each map's descriptor into the instructions (a 16-byte load, src_reg 1,
BPF_PSEUDO_MAP_FD, or 2, BPF_PSEUDO_MAP_VALUE). An image records, for each
of those, which map it names; loading it creates the maps afresh, writes their
descriptors there, and loads and attaches each program through bpf(2) and
perf_event_open(2) (tracer/kernel/bpfsys.py).

The loader helper makes the image from its compile (tracer/kernel/loader.py)
and the session keeps it in the cache directory, under a key of the program's
source and the kernel build (the source holds the struct offsets read from
this kernel's BTF): a later session with the same options on the same kernel
loads it in a fraction of the compile's time, and forks no helper at all.

The cache is trusted only where only root can write: a directory and files
owned by root and not writable by group or others. Anything else is ignored
and nothing is written there: root loading programs from a file another user
could have written would run their code in the kernel.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from proctrace.kernel import bpfsys
from proctrace.kernel.layout import CACHE_DIR, VMLINUX_BTF, cache_name, kernel_build

IMAGE_VERSION = 1
INSN_SIZE = 8
LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW: two instructions, imm in both halves
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE = 1, 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
TRACEFS_EVENTS = Path("/sys/kernel/tracing/events")

_INSN = struct.Struct("<BBhi")  # code, dst_reg:4 | src_reg:4, off, imm


class ImageError(Exception):
    """An image that cannot be made, read or loaded: the session compiles instead."""


@dataclass(frozen=True, slots=True)
class MapSpec:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    name: str
    type: int
    insns: bytes
    relocations: tuple[tuple[int, int], ...]  # (instruction index, map index)


@dataclass(frozen=True, slots=True)
class AttachSpec:
    program: int  # index into programs
    tracepoint: str  # "sched:sched_process_fork"; a raw tracepoint's bare name
    raw: bool


@dataclass(frozen=True, slots=True)
class ProgramImage:
    key: str
    license: str
    maps: tuple[MapSpec, ...]
    programs: tuple[ProgramSpec, ...]
    attachments: tuple[AttachSpec, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": IMAGE_VERSION,
                "key": self.key,
                "license": self.license,
                "maps": [[m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags] for m in self.maps],
                "programs": [
                    [p.name, p.type, base64.b64encode(p.insns).decode(), [list(r) for r in p.relocations]]
                    for p in self.programs
                ],
                "attachments": [[a.program, a.tracepoint, a.raw] for a in self.attachments],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProgramImage:
        try:
            d = json.loads(text)
            if d["version"] != IMAGE_VERSION:
                raise ImageError(f"image version {d['version']}, not {IMAGE_VERSION}")
            maps = tuple(MapSpec(str(n), int(t), int(k), int(v), int(e), int(f)) for n, t, k, v, e, f in d["maps"])
            programs = tuple(
                ProgramSpec(str(n), int(t), base64.b64decode(code), tuple((int(i), int(m)) for i, m in relocs))
                for n, t, code, relocs in d["programs"]
            )
            attachments = tuple(AttachSpec(int(p), str(tp), bool(raw)) for p, tp, raw in d["attachments"])
            image = cls(str(d["key"]), str(d["license"]), maps, programs, attachments)
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"not a program image: {exc}") from None
        image.check()
        return image

    def check(self) -> None:
        """Every reference in range: a damaged image fails here, not in the kernel."""
        for p in self.programs:
            count = len(p.insns) // INSN_SIZE
            if len(p.insns) % INSN_SIZE or not count:
                raise ImageError(f"program {p.name}: {len(p.insns)} bytes of instructions")
            loads = {at for at, _fd in map_references(p.insns)}
            for at, map_index in p.relocations:
                if at not in loads or not 0 <= map_index < len(self.maps):
                    raise ImageError(f"program {p.name}: a map reference that is not one")
        for a in self.attachments:
            if not 0 <= a.program < len(self.programs):
                raise ImageError(f"attachment {a.tracepoint}: no program {a.program}")


def image_key(source: str, btf_path: Path = VMLINUX_BTF) -> str:
    """Which compile an image is: the source (with this kernel's offsets in it)
    and the kernel build."""
    return cache_name(f"{kernel_build(btf_path)}|".encode() + source.encode())


# ---- making one (in the loader helper) -------------------------------------------------


def map_references(insns: bytes) -> list[tuple[int, int]]:
    """(instruction index, map descriptor) of each map reference in `insns`."""
    out = []
    count = len(insns) // INSN_SIZE
    i = 0
    while i < count:
        code, regs, _off, imm = _INSN.unpack_from(insns, i * INSN_SIZE)
        if code == LD_IMM64:
            if (regs >> 4) in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                out.append((i, imm))
            i += 2
        else:
            i += 1
    return out


def make_image(
    key: str,
    license: str,
    programs: list[tuple[str, int, bytes]],
    attachments: list[tuple[str, str, bool]],
    map_names: dict[int, str],
) -> ProgramImage:
    """The image of compiled `programs` (name, type, instructions as compiled,
    with the compiling process's map descriptors in them) attached as
    `attachments` (program name, tracepoint, raw). The maps are described
    from their descriptors, by the kernel, and named by `map_names`
    (descriptor to the program's name for it: the kernel keeps 15 bytes)."""
    fd_index: dict[int, int] = {}
    maps: list[MapSpec] = []
    specs = []
    for name, prog_type, insns in programs:
        relocations = []
        for at, fd in map_references(insns):
            if fd not in fd_index:
                info = bpfsys.map_info(fd)
                fd_index[fd] = len(maps)
                name_of = map_names.get(fd, info.name)
                maps.append(MapSpec(name_of, info.type, info.key_size, info.value_size, info.max_entries, info.flags))
            relocations.append((at, fd_index[fd]))
        specs.append(ProgramSpec(name, prog_type, insns, tuple(relocations)))
    index = {name: i for i, (name, _t, _c) in enumerate(programs)}
    attach = tuple(AttachSpec(index[prog], tp, raw) for prog, tp, raw in attachments)
    return ProgramImage(key, license, tuple(maps), tuple(specs), attach)


# ---- loading one (in the session) ------------------------------------------------------


def _patched(p: ProgramSpec, fds: list[int]) -> bytes:
    code = bytearray(p.insns)
    for at, map_index in p.relocations:
        op, regs, off, _imm = _INSN.unpack_from(code, at * INSN_SIZE)
        _INSN.pack_into(code, at * INSN_SIZE, op, regs, off, fds[map_index])
    return bytes(code)


def tracepoint_id(tracepoint: str, events: Path = TRACEFS_EVENTS) -> int:
    category, _, event = tracepoint.partition(":")
    try:
        return int((events / category / event / "id").read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"tracepoint {tracepoint}: no id in tracefs ({exc})") from None


def load_image(image: ProgramImage, wanted_maps: tuple[str, ...]) -> tuple[dict[str, int], list[int]]:
    """Create the maps, load and attach the programs. Returns the descriptors
    of the `wanted_maps` there are (by name) and of everything else that
    keeps the programs attached. On any failure what was made is closed
    (nothing stays attached) and ImageError says what failed."""
    made: list[int] = []
    try:
        map_fds = []
        for m in image.maps:
            map_fds.append(bpfsys.create_map(m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.name))
            made.append(map_fds[-1])
        prog_fds = []
        for p in image.programs:
            prog_fds.append(bpfsys.load_program(p.type, _patched(p, map_fds), image.license, p.name))
            made.append(prog_fds[-1])
        for a in image.attachments:
            prog = prog_fds[a.program]
            if a.raw:
                made.append(bpfsys.open_raw_tracepoint(a.tracepoint, prog))
            else:
                made.append(bpfsys.attach_tracepoint(tracepoint_id(a.tracepoint), prog, a.tracepoint))
    except (OSError, ImageError) as exc:
        for fd in made:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise ImageError(str(exc)) from None
    kept = {m.name: fd for m, fd in zip(image.maps, map_fds, strict=True) if m.name in wanted_maps}
    rest = [fd for fd in made if fd not in kept.values()]
    return kept, rest


# ---- the cache -------------------------------------------------------------------------


def _root_only(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(st.st_mode)


# Images kept: one per set of options and kernel build. Beyond this, the ones
# used longest ago go (a load marks an image used), so kernels long replaced
# and options tried once do not pile up.
IMAGES_KEPT = 32


def cache_file(key: str, cache_dir: Path | None = CACHE_DIR) -> Path | None:
    return None if cache_dir is None else cache_dir / f"program-{key}.json"


def read_cached(key: str, cache_dir: Path | None = CACHE_DIR) -> ProgramImage | None:
    """The cached image of `key`, or None: absent, not root's alone, or damaged."""
    path = cache_file(key, cache_dir)
    if path is None or cache_dir is None or not (_root_only(cache_dir) and _root_only(path)):
        return None
    try:
        image = ProgramImage.from_json(path.read_text())
    except (OSError, ImageError):
        return None
    if image.key != key:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # used: the last to be evicted
    return image


def write_cached(image: ProgramImage, cache_dir: Path | None = CACHE_DIR) -> None:
    """Keep `image` for later sessions; quietly nothing where that cannot be
    done safely (not root, a directory others can write, a read-only disk)."""
    path = cache_file(image.key, cache_dir)
    if path is None or cache_dir is None or os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not _root_only(cache_dir):
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(image.to_json())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _evict(cache_dir)


def _evict(cache_dir: Path, keep: int = IMAGES_KEPT) -> None:
    """Remove all but the `keep` images used most recently."""
    images = []
    for path in cache_dir.glob("program-*.json"):
        with contextlib.suppress(OSError):
            images.append((path.stat().st_mtime_ns, path))
    images.sort(reverse=True)
    for _mtime, path in images[keep:]:
        with contextlib.suppress(OSError):
            path.unlink()
