"""Run-a-command mode: start COMMAND held, trace it from its first exec, report its status.

The child is forked before the BPF programs load and waits on a pipe, so the
probes are attached (and its pid seeded into the in-kernel follow map) before it
execs. It runs directly, never through a shell. Under sudo it runs as the user
who invoked sudo, with that user's groups, unless asked to stay root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
from dataclasses import dataclass


class CommandError(Exception):
    """COMMAND cannot be started; the message says why."""


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: list[int]
    name: str
    home: str


def sudo_identity(environ: dict[str, str] | os._Environ[str]) -> Identity | None:
    """The user who ran `sudo proctrace`, from SUDO_UID/SUDO_GID; None if not under sudo."""
    uid_s, gid_s = environ.get("SUDO_UID"), environ.get("SUDO_GID")
    if uid_s is None or gid_s is None or os.geteuid() != 0:
        return None
    try:
        uid, gid = int(uid_s), int(gid_s)
    except ValueError:
        raise CommandError(f"SUDO_UID/SUDO_GID are not numbers ({uid_s!r}, {gid_s!r})") from None
    if uid == 0:
        return None
    try:
        entry = pwd.getpwuid(uid)
        name, home = entry.pw_name, entry.pw_dir
        groups = os.getgrouplist(name, gid)
    except KeyError:
        name, home, groups = environ.get("SUDO_USER", str(uid)), "/", [gid]
    return Identity(uid, gid, groups, name, home)


def resolve(program: str, path: str | None) -> str:
    """PATH lookup done once, here, so the traced exec is the real one and not a
    string of ENOENT attempts along PATH."""
    if "/" in program:
        if not os.path.exists(program):
            raise CommandError(f"{program}: no such file")
        return program
    found = shutil.which(program, path=path)
    if found is None:
        raise CommandError(f"{program}: command not found")
    return found


class HeldCommand:
    """A forked child that execs `argv` once `release()` is called."""

    def __init__(self, argv: list[str], identity: Identity | None) -> None:
        if not argv:
            raise CommandError("no command given after --")
        env = dict(os.environ)
        if identity is not None:
            env.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
        self.path = resolve(argv[0], env.get("PATH"))
        go_r, go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: never returns into the tracer's code
            code = 127
            try:
                os.close(go_w)
                os.close(err_r)
                self._child(go_r, argv, env, identity)
            except OSError as exc:
                os.write(err_w, f"{exc.errno}".encode())
            except BaseException:
                code = 126
            os._exit(code)
        os.close(go_r)
        os.close(err_w)
        self.pid = pid
        self._go = go_w
        self._err = err_r
        self.status: int | None = None

    def _child(self, go_r: int, argv: list[str], env: dict[str, str], identity: Identity | None) -> None:
        # Python ignores SIGPIPE and handles SIGINT itself; COMMAND must start
        # with the dispositions a shell would give it.
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signo, signal.SIG_DFL)
        if identity is not None:
            os.setgroups(identity.groups)
            os.setgid(identity.gid)
            os.setuid(identity.uid)
        if os.read(go_r, 1) != b"g":
            os._exit(125)  # the tracer gave up before starting us
        os.close(go_r)
        os.execve(self.path, argv, env)

    def release(self) -> None:
        """Let the child exec; raises CommandError if the exec failed."""
        # A child that died while held (Ctrl-C reached it) closed the pipe: poll() reports how.
        with contextlib.suppress(BrokenPipeError):
            os.write(self._go, b"g")
        os.close(self._go)
        self._go = -1
        err = os.read(self._err, 16)
        os.close(self._err)
        self._err = -1
        if err:
            self.wait()
            raise CommandError(f"cannot run {self.path}: {os.strerror(int(err))}")

    def abandon(self) -> None:
        """The tracer failed to start: the child exits without running anything.
        Once released, the command is running and is left alone."""
        if self._go < 0:
            return
        os.close(self._go)
        os.close(self._err)
        self._go = self._err = -1
        self.wait()

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        return self.status
