"""What a cgroup v2 path says: the systemd unit and the container a process runs in.

These rules are the one definition: the stream, the views, the JSON, the
filters on replay and (for cgroups made while tracing) the kernel's match at
cgroup creation (bpf/proctrace.bpf.c, cgroup_made) all follow them.

- The **unit** is the deepest path component that names a systemd unit that
  can hold processes: one ending in .service, .scope, .socket, .mount or .swap.
- The **container id** is found in the deepest component that has one: the
  text after the component's last "-" (or all of it, when it has none), up to
  a "." if one follows, when that is exactly 64 lower-case hex digits. That
  covers Docker (docker-ID.scope, /docker/ID), containerd (cri-containerd-ID.scope),
  CRI-O (crio-ID.scope), Podman (libpod-ID.scope) and kubepods paths with the
  cgroupfs driver (/kubepods/burstable/podUID/ID).

CgroupTable maps cgroup ids (what the kernel puts on every event) to these
paths, for a live session and, rebuilt from what it recorded, for its replay.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from proctrace.model.text import as_bytes, as_text

UNIT_SUFFIXES = (b".service", b".scope", b".socket", b".mount", b".swap")
CONTAINER_ID_LEN = 64
_HEX = frozenset(b"0123456789abcdef")


def components(path: bytes) -> list[bytes]:
    return [c for c in path.split(b"/") if c]


def unit_of(path: bytes) -> bytes | None:
    """The systemd unit of a cgroup path; None outside any unit."""
    for component in reversed(components(path)):
        if component.endswith(UNIT_SUFFIXES):
            return component
    return None


def container_id_in(component: bytes) -> bytes | None:
    """The container id one path component names, if it names one."""
    candidate = component[component.rfind(b"-") + 1 :]
    dot = candidate.find(b".")
    if dot >= 0:
        candidate = candidate[:dot]
    if len(candidate) == CONTAINER_ID_LEN and _HEX.issuperset(candidate):
        return candidate
    return None


def container_id_of(path: bytes) -> bytes | None:
    """The container id of a cgroup path; None outside any container."""
    for component in reversed(components(path)):
        found = container_id_in(component)
        if found is not None:
            return found
    return None


# systemd's unit types (systemd.unit(5)): a --unit NAME that ends in none of
# them is a service, as systemctl takes it.
UNIT_TYPES = (
    b".service", b".socket", b".device", b".mount", b".automount", b".swap",
    b".target", b".path", b".timer", b".slice", b".scope",
)  # fmt: skip


def unit_name(name: bytes) -> bytes:
    """A --unit argument as a cgroup component: "nginx" is "nginx.service"."""
    return name if name.endswith(UNIT_TYPES) else name + b".service"


def container_prefix(text: str) -> bytes:
    """A --container argument checked: a prefix (1 to 64 characters) of a
    64-hex-digit container id, as `docker ps` shows its first 12. Raises
    ValueError otherwise."""
    prefix = text.strip().lower().encode()
    if not 1 <= len(prefix) <= CONTAINER_ID_LEN or not _HEX.issuperset(prefix):
        raise ValueError(f"not a container id or a prefix of one (hex digits, at most 64): {text!r}")
    return prefix


def container_in_path(path: bytes, prefixes: tuple[bytes, ...]) -> bool:
    """Whether any component of `path` names a container whose id starts with
    one of `prefixes`: the process is in that container, or in one nested
    inside it (the kernel, too, matches a cgroup or any of its ancestors)."""
    for component in components(path):
        found = container_id_in(component)
        if found is not None and found.startswith(prefixes):
            return True
    return False


def normalize_path(path: bytes) -> bytes:
    """A cgroup path as /proc/PID/cgroup writes it: absolute, no empty or
    trailing components; b"/" for the root."""
    return b"/" + b"/".join(components(path))


def parent_of(path: bytes) -> bytes | None:
    """The parent cgroup's path; None for the root."""
    if path == b"/":
        return None
    return path[: path.rindex(b"/")] or b"/"


def ancestry(path: bytes) -> list[bytes]:
    """`path` and every cgroup above it, deepest first, the root last."""
    out = []
    at: bytes | None = path
    while at is not None:
        out.append(at)
        at = parent_of(at)
    return out


CGROUP2_FSTYPE = "cgroup2"


def _unescape_mount_field(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash in a path as
    octal escapes (\\040 ...)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), field)


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def parse_unified_mount(mounts: str) -> str | None:
    """Where the unified (v2) hierarchy is mounted, from /proc/self/mounts
    text: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid
    one; None when there is none (a v1-only host). The first such mount: a
    second one (a container's bind mount of a subtree) would show only part."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == CGROUP2_FSTYPE:
            return _unescape_mount_field(fields[1])
    return None


def unified_mount(mounts: Path = Path("/proc/self/mounts")) -> str | None:
    try:
        return parse_unified_mount(mounts.read_text(errors="surrogateescape"))
    except OSError:
        return None


def relative_path(text: str, mount: str | None) -> bytes:
    """A cgroup named by the user, as its path in the hierarchy: either as
    /proc/PID/cgroup writes it ("/system.slice/x.service") or as a directory
    under the mount point ("/sys/fs/cgroup/unified/system.slice/x.service")."""
    raw = as_bytes(text)
    if mount is not None:
        prefix = normalize_path(as_bytes(mount))
        if raw.rstrip(b"/") == prefix or raw.startswith(prefix + b"/"):
            raw = raw[len(prefix) :]
    return normalize_path(raw)


# How long after a scan an id nobody knows may cause another: a scan reads
# every directory of the hierarchy, and a stream of events from a cgroup whose
# mkdir we missed must not rescan on every one of them.
RESCAN_INTERVAL_S = 1.0
# Removed cgroups whose paths are kept, for their events still in flight (a
# reordered batch; a zombie's exit and reap). Ids are not reused (kernfs makes
# 64-bit ids from a cyclic counter), so old entries are never wrong, only
# dead weight: the oldest go once there are more than this.
REMOVED_KEPT = 4096


class CgroupTable:
    """Cgroup v2 ids -> paths in the unified hierarchy ("/" for its root, then
    "/system.slice/nginx.service" as /proc/PID/cgroup writes them), with each
    cgroup's parent id, so that a cgroup's ancestors are known by id even after
    a rename or a removal.

    A live table (`mount` set, `live` true) is scanned from the hierarchy and
    rescans, at most once per RESCAN_INTERVAL_S, when asked for an id it does
    not know. A table rebuilt from a recording (from_list) never touches the
    machine it is read on. Either is kept true by apply(), from the stream's
    cgroup events, and learn(), from exec contexts that name a path.
    """

    def __init__(
        self,
        mount: str | None = None,
        *,
        live: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rescan_interval_s: float = RESCAN_INTERVAL_S,
    ) -> None:
        self.mount = mount
        self.live = live and mount is not None
        self._clock = clock
        self._rescan_interval_s = rescan_interval_s
        self._last_scan: float | None = None
        self._paths: dict[int, bytes] = {}
        self._parents: dict[int, int | None] = {}
        self._ids: dict[bytes, int] = {}  # path -> the live cgroup there
        self._removed: OrderedDict[int, None] = OrderedDict()
        # Bumped by every change, so that what is derived from the table (a
        # filter's verdicts) knows when to forget.
        self.generation = 0
        self.scans = 0

    @classmethod
    def discover(cls, mounts: Path = Path("/proc/self/mounts")) -> CgroupTable:
        """The live table of this machine, scanned now; empty without cgroup v2."""
        table = cls(unified_mount(mounts), live=True)
        if table.live:
            table.scan()
        return table

    def __len__(self) -> int:
        return len(self._paths)

    def path_of(self, cgroup_id: int) -> bytes | None:
        """The path of a cgroup, also of one removed; None when unknown (after a
        rescan, for a live table that has not rescanned recently)."""
        path = self._paths.get(cgroup_id)
        if path is None and self.live and self._may_rescan():
            self.scan()
            path = self._paths.get(cgroup_id)
        return path

    def id_of(self, path: bytes) -> int | None:
        """The id of the cgroup at `path` now (not of a removed one)."""
        return self._ids.get(path)

    def ancestors(self, cgroup_id: int) -> list[int]:
        """`cgroup_id` and the ids above it, as far as they are known, the root last."""
        out = []
        at: int | None = cgroup_id
        while at is not None and at in self._paths and at not in out:
            out.append(at)
            at = self._parents.get(at)
        return out

    def _may_rescan(self) -> bool:
        return self._last_scan is None or self._clock() - self._last_scan >= self._rescan_interval_s

    def scan(self) -> None:
        """Read the hierarchy: a cgroup's id is its directory's inode number
        (kernfs gives a 64-bit id as the inode number on 64-bit machines, and
        readdir reports the same number, so no stat per directory). A cgroup
        that is gone without our having seen its rmdir is marked removed."""
        assert self.mount is not None
        self._last_scan = self._clock()
        self.scans += 1
        try:
            root_id = os.stat(self.mount).st_ino
        except OSError:
            return
        found: dict[int, tuple[bytes, int | None]] = {root_id: (b"/", None)}
        pending = [(os.fsencode(self.mount), b"", root_id)]
        while pending:
            directory, rel, parent_id = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            path = rel + b"/" + entry.name
                            found[entry.inode()] = (path, parent_id)
                            pending.append((entry.path, path, entry.inode()))
            except OSError:
                continue  # removed while we walked: its rmdir event will say so
        for cgroup_id in list(self._ids.values()):
            if cgroup_id not in found:
                self.remove(cgroup_id)
        for cgroup_id, (path, parent_id) in found.items():
            if self._paths.get(cgroup_id) != path or cgroup_id in self._removed:
                self._set(cgroup_id, path, parent_id)

    def _set(self, cgroup_id: int, path: bytes, parent_id: int | None) -> None:
        old = self._paths.get(cgroup_id)
        if old is not None and self._ids.get(old) == cgroup_id:
            del self._ids[old]
        displaced = self._ids.get(path)
        if displaced is not None and displaced != cgroup_id:
            self.remove(displaced)  # its rmdir was missed: the path is this one's now
        self._paths[cgroup_id] = path
        self._parents[cgroup_id] = parent_id
        self._ids[path] = cgroup_id
        self._removed.pop(cgroup_id, None)
        self.generation += 1

    def add(self, cgroup_id: int, path: bytes) -> None:
        """A cgroup made (mkdir), at `path`."""
        path = normalize_path(path)
        parent = parent_of(path)
        self._set(cgroup_id, path, None if parent is None else self._ids.get(parent))

    def rename(self, cgroup_id: int, path: bytes) -> None:
        """A cgroup renamed to `path`: its descendants move with it. (cgroup v2
        renames only within the same parent, so the parent ids stay true.)"""
        path = normalize_path(path)
        old = self._paths.get(cgroup_id)
        if old is None:
            self.add(cgroup_id, path)
            return
        self._set(cgroup_id, path, self._parents.get(cgroup_id))
        below = old + b"/"
        for other, other_path in list(self._paths.items()):
            if other_path.startswith(below) and other not in self._removed:
                self._set(other, path + other_path[len(old) :], self._parents.get(other))

    def remove(self, cgroup_id: int) -> None:
        """A cgroup removed (rmdir): its path stays known, for the events of its
        last tasks still in flight, but no longer answers id_of."""
        path = self._paths.get(cgroup_id)
        if path is None or cgroup_id in self._removed:
            return
        if self._ids.get(path) == cgroup_id:
            del self._ids[path]
        self._removed[cgroup_id] = None
        while len(self._removed) > REMOVED_KEPT:
            oldest, _ = self._removed.popitem(last=False)
            self._paths.pop(oldest, None)
            self._parents.pop(oldest, None)
        self.generation += 1

    def apply(self, action: str, cgroup_id: int, path: bytes) -> None:
        """A cgroup event: action "mkdir", "rmdir" or "rename" (events.CgroupEvent)."""
        if action == "mkdir":
            self.add(cgroup_id, path)
        elif action == "rename":
            self.rename(cgroup_id, path)
        elif action == "rmdir":
            if cgroup_id not in self._paths and path:
                self.add(cgroup_id, path)  # removed before we knew it: still name its events
            self.remove(cgroup_id)
        else:
            raise ValueError(f"unknown cgroup action {action!r}")

    def learn(self, cgroup_id: int, path: bytes) -> None:
        """An id and the path a process saw it at (an exec's context), for a
        table that may not know every cgroup (a recording's): only a new id is
        taken, since the table's own entry is as new or newer."""
        if cgroup_id and cgroup_id not in self._paths:
            self.add(cgroup_id, path)

    def to_list(self) -> list[dict[str, Any]]:
        """The live cgroups as a recording's header keeps them ("cgroups"), parents before children."""
        entries = sorted(self._ids.items(), key=lambda item: (item[0].count(b"/"), item[0]))
        return [{"id": cgroup_id, "path": as_text(path)} for path, cgroup_id in entries]

    @classmethod
    def from_list(cls, entries: Iterable[object], mount: str | None = None) -> CgroupTable:
        """The table a recording's header kept (to_list), never rescanned.
        Strict about types: it reads files anyone may have written."""
        table = cls(mount, live=False)
        for entry in entries:
            if not isinstance(entry, dict) or type(entry.get("id")) is not int or type(entry.get("path")) is not str:
                raise ValueError('a cgroup entry must be an object {"id": integer, "path": string}')
            table.add(entry["id"], as_bytes(entry["path"]))
        return table
