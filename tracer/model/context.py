"""Where and as whom a process runs: what an exec, or /proc for a process that
was already running, says of its directory, executable, credentials, terminal,
namespaces, cgroup and (with --env) environment.

One ProcessContext per exec: the process record in a timeline carries its
latest one. Fields the source could not read are None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        effective user or group that changed (a set-user-ID or set-group-ID
        file), or an effective capability that was not there (file
        capabilities, or a set-user-ID-root file)."""
        return (
            self.euid != before.euid
            or self.egid != before.egid
            or bool(self.cap_effective & ~before.cap_effective)
        )


@dataclass(frozen=True, slots=True)
class ProcessContext:
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
        if self.creds is None or self.creds_before is None:
            return False
        return self.creds.gained_over(self.creds_before)
