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
import fcntl
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

# bpf(2) commands (enum bpf_cmd)
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_OBJ_NAME_LEN = 16

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
_PERF_EVENT_OPEN = syscall_number("perf_event_open") if platform.machine() in _SYSCALLS else -1

PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE_VER1 = 72  # through config2: all that proctrace sets


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr, as far as PERF_ATTR_SIZE_VER1."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
    ]


assert ctypes.sizeof(PerfEventAttr) == PERF_ATTR_SIZE_VER1


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
    """perf_event_open(2); OSError with the errno on failure."""
    fd = _syscall(
        ctypes.c_long(_PERF_EVENT_OPEN),
        ctypes.byref(attr),
        ctypes.c_int(pid),
        ctypes.c_int(cpu),
        ctypes.c_int(group_fd),
        ctypes.c_ulong(flags),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


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
    flags: int = 0


def map_info(fd: int) -> MapInfo:
    """What the kernel says of the map behind `fd`."""
    info = _MapInfo()
    attr = _InfoAttr(fd, ctypes.sizeof(info), ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    name = info.name.decode(errors="replace")
    return MapInfo(info.type, info.key_size, info.value_size, info.max_entries, name, info.map_flags)


# enum bpf_map_type values this module treats specially
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_RINGBUF = 27
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


# ---- creating maps and loading programs (tracer/kernel/image.py) -------------------------

PERF_TYPE_TRACEPOINT = 2
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_DISABLE = 0x2401  # _IO('$', 1)
PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
VERIFIER_LOG_SIZE = 1 << 20


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("_rest", ctypes.c_uint8 * 64),  # map_ifindex, btf ids...: zero
    ]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("_rest", ctypes.c_uint8 * 64),  # ifindex, expected_attach_type, BTF: zero
    ]


class _RawTracepointAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


def _object_name(name: str) -> bytes:
    """A name the kernel takes for a map or program: at most 15 of [A-Za-z0-9_.]."""
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[: BPF_OBJ_NAME_LEN - 1].encode()


def create_map(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int, name: str) -> int:
    attr = _MapCreateAttr(map_type, key_size, value_size, max_entries, flags, 0, 0, _object_name(name))
    try:
        return bpf(BPF_MAP_CREATE, attr)
    except BpfError as exc:
        raise BpfError(exc.errno, f"creating map {name}: {exc.strerror}") from None


def load_program(prog_type: int, insns: bytes, license: str, name: str) -> int:
    """BPF_PROG_LOAD; a rejection is retried once with the verifier's log, to say why."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _ProgLoadAttr(prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic))
    attr.prog_name = _object_name(name)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except BpfError as exc:
        if exc.errno not in (errno_mod.EACCES, errno_mod.EINVAL):
            raise BpfError(exc.errno, f"loading program {name}: {exc.strerror}") from None
    log = ctypes.create_string_buffer(VERIFIER_LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, VERIFIER_LOG_SIZE, ctypes.addressof(log)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except BpfError as exc:
        tail = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise BpfError(exc.errno, f"the kernel refused program {name}: {exc.strerror}: {' / '.join(tail)}") from None


def open_raw_tracepoint(name: str, prog_fd: int) -> int:
    """Attach `prog_fd` to raw tracepoint `name`; the attachment lasts as long as the descriptor."""
    raw = ctypes.create_string_buffer(name.encode())
    try:
        return bpf(BPF_RAW_TRACEPOINT_OPEN, _RawTracepointAttr(ctypes.addressof(raw), prog_fd, 0))
    except BpfError as exc:
        raise BpfError(exc.errno, f"attaching to raw tracepoint {name}: {exc.strerror}") from None


def attach_tracepoint(tracepoint_id: int, prog_fd: int, name: str) -> int:
    """Attach `prog_fd` to the tracepoint of that id (tracefs events/CATEGORY/EVENT/id)
    through a perf event, as bcc does; the attachment lasts as long as the
    descriptor. The program runs on every CPU whatever the event's own CPU."""
    attr = PerfEventAttr()
    attr.type = PERF_TYPE_TRACEPOINT
    attr.size = ctypes.sizeof(attr)
    attr.config = tracepoint_id
    attr.sample_period = 1
    attr.wakeup_events = 1
    try:
        fd = perf_event_open(attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    except OSError as exc:
        raise BpfError(exc.errno, f"opening tracepoint {name}: {exc.strerror}") from None
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError as exc:
        os.close(fd)
        raise BpfError(exc.errno, f"attaching to tracepoint {name}: {exc.strerror}") from None
    return fd
