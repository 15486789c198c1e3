"""BPF maps through the bpf(2) system call, without bcc.

The session holds the loaded programs' map descriptors (tracer/kernel/loader.py
hands them over) and reads and updates them here: the followed pids, the
cgroup selection, the loss counters and the folded signals. The calls are the
kernel's UAPI (include/uapi/linux/bpf.h), through libc's syscall(); a map's key
and value sizes come with its descriptor.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

# bpf(2) commands (enum bpf_cmd)
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_GET_INFO_BY_FD = 15

BPF_ANY = 0  # update flags: create or replace

# The bpf(2) and perf_event_open(2) syscall numbers, by machine.
_SYSCALLS = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
}

# The process's own symbols, libc's among them (ctypes.util would import tempfile and more to find it).
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class BpfError(OSError):
    """A bpf(2) call failed."""


def syscall_number(name: str) -> int:
    machine = platform.machine()
    try:
        return _SYSCALLS[machine][name]
    except KeyError:
        raise BpfError(errno_mod.ENOSYS, f"no {name} syscall number known for {machine}") from None


_BPF = syscall_number("bpf") if platform.machine() in _SYSCALLS else -1


class _MapElemAttr(ctypes.Structure):
    """union bpf_attr, as the map element commands read it."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # also next_key
        ("flags", ctypes.c_uint64),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info: as much as this module reads."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    result = _syscall(_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise BpfError(err, os.strerror(err))
    return result


def possible_cpus() -> int:
    """How many CPUs the kernel could ever bring up: per-CPU map values hold one slot each."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count = max(count, int(last or first) + 1)
    return count


@dataclass(frozen=True, slots=True)
class MapInfo:
    type: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(fd: int) -> MapInfo:
    """What the kernel says of the map behind `fd`."""
    info = _MapInfo()
    attr = _InfoAttr(fd, ctypes.sizeof(info), ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return MapInfo(info.type, info.key_size, info.value_size, info.max_entries, info.name.decode(errors="replace"))


# enum bpf_map_type values this module treats specially
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
_PER_CPU = {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH}


class BpfMap:
    """One map, by descriptor: keys and values are bytes of the map's sizes.

    A per-CPU map's value is one slot per possible CPU, each rounded up to 8
    bytes, as the kernel copies them."""

    def __init__(self, fd: int, name: str = "") -> None:
        self.fd = fd
        info = map_info(fd)
        self.name = name or info.name
        self.key_size, self.value_size, self.type = info.key_size, info.value_size, info.type
        self.per_cpu = info.type in _PER_CPU
        self.slot_size = (self.value_size + 7) & ~7
        self.read_size = self.slot_size * possible_cpus() if self.per_cpu else self.value_size

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: a key is {self.key_size} bytes, not {len(key)}")
        return ctypes.create_string_buffer(key, len(key))

    def lookup(self, key: bytes) -> bytes | None:
        """The value at `key` (per-CPU: every CPU's slot, concatenated), or None."""
        k = self._key(key)
        value = ctypes.create_string_buffer(self.read_size)
        try:
            bpf(BPF_MAP_LOOKUP_ELEM, _MapElemAttr(self.fd, 0, ctypes.addressof(k), ctypes.addressof(value), 0))
        except BpfError as exc:
            if exc.errno == errno_mod.ENOENT:
                return None
            raise
        return value.raw

    def per_cpu_values(self, key: bytes) -> list[bytes]:
        """A per-CPU map's value at `key`, one bytes per possible CPU."""
        raw = self.lookup(key)
        if raw is None:
            return []
        step = self.slot_size
        return [raw[i : i + self.value_size] for i in range(0, len(raw), step)]

    def update(self, key: bytes, value: bytes) -> None:
        if len(value) != self.value_size:
            raise ValueError(f"{self.name}: a value is {self.value_size} bytes, not {len(value)}")
        k, v = self._key(key), ctypes.create_string_buffer(value, len(value))
        bpf(BPF_MAP_UPDATE_ELEM, _MapElemAttr(self.fd, 0, ctypes.addressof(k), ctypes.addressof(v), BPF_ANY))

    def delete(self, key: bytes) -> bool:
        """Remove `key`; False if it was not there."""
        k = self._key(key)
        try:
            bpf(BPF_MAP_DELETE_ELEM, _MapElemAttr(self.fd, 0, ctypes.addressof(k), 0, 0))
        except BpfError as exc:
            if exc.errno == errno_mod.ENOENT:
                return False
            raise
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key, as the kernel walks them (a key deleted meanwhile may
        restart the walk of a hash map: callers that delete collect first)."""
        key = None
        following = ctypes.create_string_buffer(self.key_size)
        while True:
            current = 0 if key is None else ctypes.addressof(key)
            try:
                bpf(BPF_MAP_GET_NEXT_KEY, _MapElemAttr(self.fd, 0, current, ctypes.addressof(following), 0))
            except BpfError as exc:
                if exc.errno == errno_mod.ENOENT:
                    return
                raise
            yield following.raw
            key = ctypes.create_string_buffer(following.raw, self.key_size)

    def items(self) -> list[tuple[bytes, bytes]]:
        out = []
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                out.append((key, value))
        return out

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)
