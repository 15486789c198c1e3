"""tracer/session/command.py: who a command runs as, finding it, and holding it until released.

No BPF here; HeldCommand forks real children running harmless programs.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from proctrace.session import command
from proctrace.session.command import CommandError, HeldCommand, Identity, resolve, sudo_identity

from tests.environment import requires

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command.os, "geteuid", lambda: 0)


def test_no_sudo_variables_means_no_identity(as_root) -> None:
    assert sudo_identity({}) is None
    assert sudo_identity({"SUDO_UID": "1000"}) is None  # both are needed
    assert sudo_identity({"SUDO_GID": "1000"}) is None


def test_sudo_variables_are_ignored_unless_running_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command.os, "geteuid", lambda: 1000)
    assert sudo_identity({"SUDO_UID": "65534", "SUDO_GID": "65534"}) is None


def test_sudo_from_root_keeps_root(as_root) -> None:
    assert sudo_identity({"SUDO_UID": "0", "SUDO_GID": "0"}) is None


def passwd_entry(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def test_sudo_uid_of_nobody_gives_nobodys_identity(as_root) -> None:
    entry = passwd_entry(65534)
    requires(entry is not None, "needs a passwd entry for uid 65534 (nobody)")
    assert entry is not None
    ident = sudo_identity({"SUDO_UID": "65534", "SUDO_GID": "65534", "SUDO_USER": "ignored"})
    assert ident is not None
    assert (ident.uid, ident.gid, ident.name, ident.home) == (65534, 65534, entry.pw_name, entry.pw_dir)
    assert 65534 in ident.groups  # the primary group is always in the list
    assert 0 not in ident.groups  # root's groups are not inherited


def test_sudo_uid_without_passwd_entry_falls_back_to_sudo_user(as_root) -> None:
    uid = 3_987_654
    requires(passwd_entry(uid) is None, f"needs uid {uid} to have no passwd entry")
    ident = sudo_identity({"SUDO_UID": str(uid), "SUDO_GID": "4242", "SUDO_USER": "ghost"})
    assert ident == Identity(uid, 4242, [4242], "ghost", "/")
    assert sudo_identity({"SUDO_UID": str(uid), "SUDO_GID": "4242"}).name == str(uid)


@pytest.mark.parametrize(("uid", "gid"), [("abc", "1000"), ("1000", "x1"), ("", "")])
def test_non_numeric_sudo_ids_raise(as_root, uid: str, gid: str) -> None:
    with pytest.raises(CommandError, match="not numbers"):
        sudo_identity({"SUDO_UID": uid, "SUDO_GID": gid})


# --- resolve -------------------------------------------------------------------------


def make_executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_resolve_finds_a_program_on_the_given_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    prog = make_executable(second / "pt-tool")
    assert resolve("pt-tool", f"{first}{os.pathsep}{second}") == str(prog)


def test_resolve_takes_the_first_match_along_path(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    early = make_executable(tmp_path / "a" / "pt-tool")
    make_executable(tmp_path / "b" / "pt-tool")
    assert resolve("pt-tool", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}") == str(early)


def test_resolve_skips_files_that_are_not_executable(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "pt-tool").write_text("not executable")
    (tmp_path / "a" / "pt-tool").chmod(0o644)
    prog = make_executable(tmp_path / "b" / "pt-tool")
    assert resolve("pt-tool", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}") == str(prog)


def test_resolve_of_a_command_not_on_path_raises_command_not_found(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="pt-no-such-tool: command not found"):
        resolve("pt-no-such-tool", str(tmp_path))


def test_resolve_of_a_missing_path_with_a_slash_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(CommandError, match="no such file"):
        resolve(str(missing), "/usr/bin:/bin")
    with pytest.raises(CommandError):
        resolve("./pt-no-such-tool", "/usr/bin:/bin")


def test_resolve_returns_a_path_with_a_slash_unchanged_without_searching_path(tmp_path: Path) -> None:
    prog = make_executable(tmp_path / "pt-tool")
    assert resolve(str(prog), "/nonexistent") == str(prog)


# --- HeldCommand ---------------------------------------------------------------------


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_empty_command_raises() -> None:
    with pytest.raises(CommandError, match="no command"):
        HeldCommand([], None)


def test_unresolvable_command_raises_before_forking(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="command not found"):
        HeldCommand(["pt-no-such-tool-anywhere"], None)


def test_released_true_exits_with_status_0() -> None:
    held = HeldCommand(["/bin/true"], None)
    held.release()
    assert held.wait() == 0
    assert held.poll() == 0


def test_released_command_status_is_its_wait_status() -> None:
    held = HeldCommand(["/bin/sh", "-c", "exit 3"], None)
    held.release()
    assert os.WIFEXITED(held.wait())
    assert os.WEXITSTATUS(held.wait()) == 3


def test_held_command_does_not_run_until_released(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    held = HeldCommand(["/bin/touch", str(marker)], None)
    try:
        assert held.poll() is None  # still waiting on the pipe
        assert not marker.exists()
    finally:
        held.release()
    assert held.wait() == 0
    assert marker.exists()


def test_abandoned_command_exits_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    held = HeldCommand(["/bin/touch", str(marker)], None)
    held.abandon()
    assert held.status is not None
    assert os.WIFEXITED(held.status) and os.WEXITSTATUS(held.status) == 125
    assert not marker.exists()


def test_release_of_a_command_that_cannot_be_executed_raises(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    held = HeldCommand([str(script)], None)
    runs_anyway = os.geteuid() == 0 and os.access(script, os.X_OK)
    if runs_anyway:
        held.abandon()
    requires(not runs_anyway, "root may execute a file without an execute bit here")
    with pytest.raises(CommandError, match="Permission denied"):
        held.release()
    assert held.status is not None


def test_command_runs_as_the_given_identity_with_only_its_groups(capfd: pytest.CaptureFixture[str]) -> None:
    requires(os.geteuid() == 0, "switching to another user needs root")
    who = Identity(uid=65534, gid=65534, groups=[65534, 4321], name="pt-user", home="/pt-home")
    held = HeldCommand(["/bin/sh", "-c", 'echo "$(id -u) $(id -g) $(id -G) $HOME $USER $LOGNAME"'], who)
    held.release()
    assert held.wait() == 0
    uid, gid, *rest = capfd.readouterr().out.split()  # the child writes to our fd 1
    groups, env = rest[:-3], rest[-3:]
    assert (uid, gid) == ("65534", "65534")
    assert sorted(groups) == ["4321", "65534"]  # root's groups are dropped
    assert env == ["/pt-home", "pt-user", "pt-user"]


@pytest.mark.parametrize("name", ["PIPE", "XFSZ"])
def test_command_starts_with_default_disposition_for_signals_python_ignores(name: str) -> None:
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec;
    # a command started from a shell would die of them.
    held = HeldCommand(["/bin/sh", "-c", f"kill -s {name} $$; exit 3"], None)
    held.release()
    status = held.wait()
    assert os.WIFSIGNALED(status), f"exited with {os.WEXITSTATUS(status)}: SIG{name} was ignored"
    assert os.WTERMSIG(status) == getattr(signal, f"SIG{name}")


def test_abandon_closes_every_pipe_end_it_holds() -> None:
    before = open_fds()
    HeldCommand(["/bin/true"], None).abandon()
    assert open_fds() == before


def test_release_and_wait_close_every_pipe_end() -> None:
    before = open_fds()
    held = HeldCommand(["/bin/true"], None)
    held.release()
    held.wait()
    assert open_fds() == before


def test_release_reports_a_child_that_failed_before_exec_as_command_error() -> None:
    # setgid to gid -1 is always EINVAL: the child fails while switching identity,
    # before it reads the go byte. The tracer releases the child only after loading
    # BPF, seconds later, so by then the child has always exited.
    bad = Identity(uid=os.getuid(), gid=2**32 - 1, groups=[os.getgid()], name="x", home="/")
    if os.geteuid() != 0:
        bad = Identity(uid=os.getuid(), gid=os.getgid(), groups=[os.getgid()], name="x", home="/")  # setgroups: EPERM
    held = HeldCommand(["/bin/true"], bad)
    os.waitid(os.P_PID, held.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    with pytest.raises(CommandError, match="cannot run /bin/true"):
        held.release()


CHILD_ESCAPE_SCRIPT = """
import os, sys
from proctrace.session.command import HeldCommand
parent = os.getpid()
try:
    held = HeldCommand(["/bin/true", "bad\\0arg"], None)
except Exception:
    if os.getpid() != parent:
        print("child escaped into the caller", flush=True)
    os._exit(0)
try:
    held.release()
except Exception:
    pass
print(f"status {held.wait()}", flush=True)
"""


def test_forked_child_never_returns_into_the_caller() -> None:
    # execve raises ValueError (not OSError) for an argument with a NUL byte; the
    # child must still _exit, not unwind into the caller's code as a second tracer.
    out = subprocess.run(
        [sys.executable, "-c", CHILD_ESCAPE_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert "child escaped" not in out.stdout
    assert "status " in out.stdout  # the parent got past release() and reaped the child
    assert "status 0" not in out.stdout  # and was not told the command ran fine


def test_abandon_after_release_leaves_the_running_command_alone() -> None:
    """A session that fails after starting its command neither waits for it nor stops it."""
    held = HeldCommand(["/bin/sleep", "5"], None)
    held.release()
    held.abandon()  # returns at once: waiting would take the five seconds
    try:
        assert held.poll() is None
    finally:
        os.kill(held.pid, signal.SIGTERM)  # the child this test started
    status = held.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
