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
"""

from __future__ import annotations

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
