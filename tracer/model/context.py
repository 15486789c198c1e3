"""Where and as whom a process runs: what an exec, or /proc for a process that
was already running, says of its directory, executable, credentials, terminal,
namespaces, cgroup and (with --env) environment.

One ProcessContext per exec: the process record in a timeline carries its
latest one. Fields the source could not read are None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proctrace.model.cgroups import container_id_of, unit_of
from proctrace.model.text import as_bytes, as_text

# A kernel uid/gid that is not set: the audit login uid and session before any
# login, (uid_t)-1.
UNSET_ID = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Credentials:
    """A task's credentials as the kernel holds them (the initial user
    namespace's ids), and its effective capability set as a bit mask."""

    uid: int
    euid: int
    suid: int
    fsuid: int
    gid: int
    egid: int
    sgid: int
    fsgid: int
    cap_effective: int

    def gained_over(self, before: Credentials) -> bool:
        """Whether these credentials hold privilege that `before` did not: an
        effective capability that was not there, or root as the effective user
        or group where it was not. Dropping root for another user is no gain."""
        return (
            bool(self.cap_effective & ~before.cap_effective)
            or (self.euid == 0 != before.euid)
            or (self.egid == 0 != before.egid)
        )

    def identity_changed(self, before: Credentials) -> bool:
        """Whether the effective user or group differs from `before`'s."""
        return self.euid != before.euid or self.egid != before.egid


@dataclass(slots=True)
class ProcessContext:
    """Not frozen, for speed: a frozen dataclass of this many fields costs ~3 us
    to build and as much again to copy with one field changed, once per exec.
    A context belongs to the one event or snapshot entry that holds it; only
    the steps before any output sees it (the cgroup path filled in live,
    tracer/model/cgroup_context.py; the environment redacted,
    tracer/model/redact.py) set a field, and nothing changes it after."""

    # The working directory: an absolute path, or, when cwd_truncated, only its
    # deepest components (relative, never mistaken for the whole path).
    cwd: bytes | None = None
    cwd_truncated: bool = False
    cwd_deleted: bool = False  # the directory was removed (/proc shows "(deleted)")
    # The executable's identity on disk: st_dev (as stat(2) gives it) and st_ino.
    exe_dev: int | None = None
    exe_ino: int | None = None
    exe_memfd: bool = False  # run from a memfd_create() file: fileless
    exe_deleted: bool = False  # the file has no name left (unlinked, or a memfd)
    creds: Credentials | None = None
    # The credentials before the exec, where the tracer saw the exec begin.
    creds_before: Credentials | None = None
    tty: str | None = None  # "pts/3", "tty1", ...; None without a controlling terminal
    sid: int | None = None  # the session id (setsid(2)), as the initial pid namespace sees it
    login_uid: int | None = None  # the audit login uid; None while unset
    login_session: int | None = None  # the audit session id; None while unset
    pidns: int | None = None  # inode of the pid namespace the process is in
    ns_pid: int | None = None  # the pid as the process sees itself in that namespace
    mntns: int | None = None  # inode of its mount namespace
    cgroup: bytes | None = None  # the cgroup v2 path, "/system.slice/nginx.service"
    # With --env: the environment of the new image, name -> value, in order.
    env: dict[bytes, bytes] | None = None
    env_truncated: bool = False

    @property
    def privilege_gain(self) -> bool:
        """Across an exec, any change of effective user or group is a gain: only
        a set-user-ID or set-group-ID file makes one, and it gives the process
        the file owner's identity, root or not. So is a capability the new
        image gained (file capabilities, or a set-user-ID-root file)."""
        creds, before = self.creds, self.creds_before
        if creds is None or before is None or creds is before:  # decoded credentials are shared per value
            return False
        return creds.gained_over(before) or creds.identity_changed(before)

    @property
    def unit(self) -> bytes | None:
        return None if self.cgroup is None else unit_of(self.cgroup)

    @property
    def container_id(self) -> bytes | None:
        return None if self.cgroup is None else container_id_of(self.cgroup)

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields of a context, as an exec event and a snapshot process
        carry them beside their other fields (README, JSON schema). Not `uid`:
        the record that holds a context has it already, and it is the same value."""
        creds = self.creds
        d: dict[str, Any] = {
            "cwd": _text(self.cwd),
            "cwd_truncated": self.cwd_truncated,
            "cwd_deleted": self.cwd_deleted,
            "exe_dev": self.exe_dev,
            "exe_ino": self.exe_ino,
            "exe_memfd": self.exe_memfd,
            "exe_deleted": self.exe_deleted,
        }
        for name in CRED_FIELDS[1:]:
            d[name] = None if creds is None else getattr(creds, name)
        d["creds_before"] = None if self.creds_before is None else creds_to_dict(self.creds_before)
        d["privilege_gain"] = self.privilege_gain
        d["tty"] = self.tty
        d["sid"] = self.sid
        d["login_uid"] = self.login_uid
        d["login_session"] = self.login_session
        d["pidns"] = self.pidns
        d["ns_pid"] = self.ns_pid
        d["mntns"] = self.mntns
        d["cgroup"] = _text(self.cgroup)
        d["unit"] = _text(self.unit)
        d["container_id"] = _text(self.container_id)
        if self.env is not None:
            d["env"] = {as_text(k): as_text(v) for k, v in self.env.items()}
            d["env_truncated"] = self.env_truncated
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcessContext | None:
        """The inverse of to_dict, from the record holding it (whose `uid` it
        reads); None when the record has no context (a failed exec, or a
        recording from before contexts). Strict about types: it reads files
        anyone may have written."""
        if "cwd" not in d:
            return None
        creds = None
        if d.get("euid") is not None:
            creds = creds_from_dict(d)  # the record's own uid and the context's other ids
        before = d.get("creds_before")
        env = d.get("env")
        if env is not None and not isinstance(env, dict):
            raise ValueError("env must be an object")
        ctx = cls(  # positionally, in field order: keywords cost a microsecond an exec
            _raw(d["cwd"]),
            _flag(d, "cwd_truncated"),
            _flag(d, "cwd_deleted"),
            _int(d, "exe_dev"),
            _int(d, "exe_ino"),
            _flag(d, "exe_memfd"),
            _flag(d, "exe_deleted"),
            creds,
            None if before is None else creds_from_dict(before),
            _str(d, "tty"),
            _int(d, "sid"),
            _int(d, "login_uid"),
            _int(d, "login_session"),
            _int(d, "pidns"),
            _int(d, "ns_pid"),
            _int(d, "mntns"),
            _raw(d.get("cgroup")),
            None if env is None else {as_bytes(k): as_bytes(v) for k, v in env.items()},
            _flag(d, "env_truncated") if env is not None else False,
        )
        return ctx


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else as_text(raw)


def _raw(value: object) -> bytes | None:
    return None if value is None else as_bytes(value)  # type: ignore[arg-type]


def _flag(d: dict[str, Any], name: str) -> bool:
    value = d.get(name, False)
    if type(value) is not bool:
        raise ValueError(f"{name} must be a boolean")
    return value


def _int(d: dict[str, Any], name: str) -> int | None:
    value = d.get(name)
    if value is not None and type(value) is not int:
        raise ValueError(f"{name} must be an integer or null")
    return value


def _str(d: dict[str, Any], name: str) -> str | None:
    value = d.get(name)
    if value is not None and type(value) is not str:
        raise ValueError(f"{name} must be a string or null")
    return value


# include/uapi/linux/capability.h, by bit number.
CAPABILITY_NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # fmt: skip
ALL_CAPABILITIES = (1 << len(CAPABILITY_NAMES)) - 1


def capability_names(mask: int) -> list[str]:
    """cap_chown, cap_kill, ... for the bits of `mask`; cap_<n> for a bit newer than this list."""
    return [
        f"cap_{CAPABILITY_NAMES[bit]}" if bit < len(CAPABILITY_NAMES) else f"cap_{bit}"
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    ]


def describe_capabilities(mask: int) -> str:
    """How text output names a capability set: "none", "all", or the names."""
    if mask == 0:
        return "none"
    if mask & ALL_CAPABILITIES == ALL_CAPABILITIES:
        return "all"
    return ",".join(capability_names(mask))


# Device majors of terminals (Documentation/admin-guide/devices.txt).
_PTS_MAJORS = range(136, 144)  # Unix98 pty slaves, 256 each
_TTY_MAJOR = 4  # tty0-63 virtual consoles, ttyS0- serial from minor 64
_TTYAUX_MAJOR = 5  # minor 1: /dev/console


def tty_name(major: int, minor: int) -> str:
    """The name of a terminal device as ps(1) shows it: "pts/3", "tty1", "ttyS0",
    "console"; "tty(MAJOR:MINOR)" for one this table does not know."""
    if major in _PTS_MAJORS:
        return f"pts/{(major - _PTS_MAJORS.start) * 256 + minor}"
    if major == _TTY_MAJOR:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if major == _TTYAUX_MAJOR and minor == 1:
        return "console"
    return f"tty({major}:{minor})"


def decode_tty_nr(tty_nr: int) -> tuple[int, int] | None:
    """(major, minor) of /proc/PID/stat's tty_nr (the kernel's new_encode_dev); None for no terminal."""
    if tty_nr == 0:
        return None
    return (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)


def _id_or_none(value: int) -> int | None:
    return None if value == UNSET_ID else value


CRED_FIELDS = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "cap_effective")


_interned: dict[tuple[int, ...], Credentials] = {}


def interned_credentials(values: tuple[int, ...]) -> Credentials:
    """The Credentials of these nine values, shared: a machine runs as few
    distinct identities, and the one before an exec is usually the one after,
    so decoding reuses one (frozen) object per value."""
    creds = _interned.get(values)
    if creds is None:
        creds = Credentials(*values)
        if len(_interned) < 4096:
            _interned[values] = creds
    return creds


def creds_to_dict(creds: Credentials) -> dict[str, int]:
    return {name: getattr(creds, name) for name in CRED_FIELDS}


def creds_from_dict(d: object) -> Credentials:
    """Credentials from an object of the nine integers (a cred event's before
    and after, an exec's creds_before, or the fields of the exec itself), shared
    per value. Read for every exec of a recording, so the checks are spelled out."""
    if not isinstance(d, dict):
        raise ValueError(f"credentials must be an object of integers {', '.join(CRED_FIELDS)}")
    g = d.get
    values = (
        g("uid"), g("euid"), g("suid"), g("fsuid"), g("gid"), g("egid"), g("sgid"), g("fsgid"), g("cap_effective")
    )  # fmt: skip
    u, eu, su, fsu, gi, eg, sg, fsg, cap = values
    if not (
        type(u) is int and type(eu) is int and type(su) is int and type(fsu) is int and type(gi) is int
        and type(eg) is int and type(sg) is int and type(fsg) is int and type(cap) is int
    ):  # fmt: skip
        raise ValueError(f"credentials must be an object of integers {', '.join(CRED_FIELDS)}")
    return interned_credentials(values)  # type: ignore[arg-type]
