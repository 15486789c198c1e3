"""proctrace's kernel-side loss counter, read independently of proctrace with
bpf(2): the overload section checks that the count proctrace reports equals it."""

from __future__ import annotations

import ctypes
import os
import platform
import re
import struct
from pathlib import Path

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
_BPF_MAP_LOOKUP_ELEM, _BPF_MAP_GET_FD_BY_ID, _BPF_OBJ_GET_INFO_BY_FD = 1, 14, 15


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ret = libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def cpu_list_size(text: str) -> int:
    """CPUs in a kernel CPU list such as "0-1" or "0,2-3,8"."""
    total = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        total += int(last) - int(first) + 1 if last else 1
    return total


def possible_cpus() -> int:
    """Number of possible CPUs: the size of a per-CPU map value."""
    return cpu_list_size(Path("/sys/devices/system/cpu/possible").read_text())


class LostCounter:
    """proctrace's `lost_events` per-CPU map, opened by id from the process's own
    fds. Holding it open keeps it alive after proctrace exits, so the final
    kernel count can be read once nothing can change it any more."""

    def __init__(self, pid: int) -> None:
        self.fd: int | None = None
        if _SYS_BPF is None:
            return
        for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
            try:
                m = re.search(r"^map_id:\s+(\d+)", fdinfo.read_text(), re.MULTILINE)
            except OSError:
                continue
            if not m:
                continue
            attr = ctypes.create_string_buffer(16)
            struct.pack_into("I", attr, 0, int(m.group(1)))
            try:
                fd = _bpf(_BPF_MAP_GET_FD_BY_ID, attr)
            except OSError:
                continue
            info = ctypes.create_string_buffer(64)
            attr = ctypes.create_string_buffer(16)
            struct.pack_into("IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
            _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr)
            if info.raw[24:40].split(b"\0")[0] == b"lost_events":
                self.fd = fd
                return
            os.close(fd)

    def read(self) -> int | None:
        if self.fd is None:
            return None
        ncpu = possible_cpus()
        key = ctypes.create_string_buffer(4)
        value = ctypes.create_string_buffer(8 * ncpu)
        attr = ctypes.create_string_buffer(32)
        struct.pack_into("IIQQQ", attr, 0, self.fd, 0, ctypes.addressof(key), ctypes.addressof(value), 0)
        _bpf(_BPF_MAP_LOOKUP_ELEM, attr)
        return sum(struct.unpack_from(f"{ncpu}Q", value.raw))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
