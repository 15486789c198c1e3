"""The kernel side of where and as whom a process runs, against /proc.

Each test starts a process that execs into something that waits, reads what
/proc says of it while it lives (an independent source: the kernel's own
procfs code, not our BTF reads), then compares the exec event's context. One
Probe serves the module; every test looks only at the processes it started,
by pid, and stops only those.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proctrace.kernel.probe import Probe
from proctrace.kernel.program import ProgramOptions
from proctrace.model.context import UNSET_ID, ProcessContext, decode_tty_nr, tty_name
from proctrace.model.events import CredEvent, Event, ExecEvent

from tests.environment import requires

pytestmark = pytest.mark.live

UNIFIED_CANDIDATES = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


class Events:
    """Everything the probe sent since the module began, drained on demand."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.seen: list[Event] = []

    def wait_for(self, predicate, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            batch, errors = self.probe.drain()
            assert not errors, errors
            self.seen += batch
            found = [ev for ev in self.seen if predicate(ev)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def last_exec(self, pid: int) -> ExecEvent:
        """The latest successful exec of process `pid` (its image now)."""
        found = self.wait_for(lambda ev: isinstance(ev, ExecEvent) and ev.tgid == pid and not ev.errno)
        assert found, f"no exec event for pid {pid}"
        ev = found[-1]
        assert isinstance(ev, ExecEvent) and ev.context is not None
        return ev


@pytest.fixture(scope="module")
def events() -> Iterator[Events]:
    probe = Probe(ProgramOptions(env=True))
    try:
        yield Events(probe)
    finally:
        probe.close()


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes a test started: each is stopped by its pid afterwards."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_for_exec_into(pid: int, name: bytes, timeout: float = 10.0) -> None:
    """Until /proc/PID/comm says the process runs `name`: then it is the image we compare."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/comm").read_bytes().strip() == name:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never exec'd into {name!r}")


def status_ids(pid: int, key: bytes) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_bytes().splitlines():
        if line.startswith(key + b":"):
            return [int(v, 16) if key.startswith(b"Cap") else int(v) for v in line.split()[1:]]
    raise AssertionError(f"no {key!r} in /proc/{pid}/status")


def stat_fields(pid: int) -> list[bytes]:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw[raw.rindex(b")") + 2 :].split()  # from field 3 (state) on


def ns_inode(pid: int, ns: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{ns}").st_ino


def start(started: list, argv: list[str], **kw) -> subprocess.Popen:
    proc = subprocess.Popen(argv, **{"stdin": subprocess.DEVNULL, **kw})
    started.append(proc)
    return proc


# --- every field of a plain exec ---------------------------------------------------


def test_a_plain_exec_matches_proc_field_by_field(events: Events, started: list, tmp_path: Path) -> None:
    proc = start(started, ["/bin/sleep", "30"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PT_LIVE": "on"})
    wait_for_exec_into(proc.pid, b"sleep")
    pid = proc.pid
    ctx = events.last_exec(pid).context
    assert ctx is not None
    exe = os.stat(f"/proc/{pid}/exe")
    assert (ctx.exe_dev, ctx.exe_ino) == (exe.st_dev, exe.st_ino)
    assert not ctx.exe_deleted and not ctx.exe_memfd
    assert ctx.cwd == os.readlink(f"/proc/{pid}/cwd").encode()
    assert not ctx.cwd_truncated and not ctx.cwd_deleted
    uid, euid, suid, fsuid = status_ids(pid, b"Uid")
    gid, egid, sgid, fsgid = status_ids(pid, b"Gid")
    creds = ctx.creds
    assert creds is not None
    assert (creds.uid, creds.euid, creds.suid, creds.fsuid) == (uid, euid, suid, fsuid)
    assert (creds.gid, creds.egid, creds.sgid, creds.fsgid) == (gid, egid, sgid, fsgid)
    assert creds.cap_effective == status_ids(pid, b"CapEff")[0]
    assert ctx.creds_before == creds and not ctx.privilege_gain
    fields = stat_fields(pid)
    assert ctx.sid == int(fields[3])  # field 6: session
    tty = decode_tty_nr(int(fields[4]))  # field 7: tty_nr
    assert ctx.tty == (None if tty is None else tty_name(*tty))
    login_uid = int(Path(f"/proc/{pid}/loginuid").read_text())
    login_session = int(Path(f"/proc/{pid}/sessionid").read_text())
    assert ctx.login_uid == (None if login_uid == UNSET_ID else login_uid)
    assert ctx.login_session == (None if login_session == UNSET_ID else login_session)
    assert ctx.pidns == ns_inode(pid, "pid")
    assert ctx.mntns == ns_inode(pid, "mnt")
    assert ctx.ns_pid == status_ids(pid, b"NSpid")[-1] == pid
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert ctx.env == dict(entry.partition(b"=")[::2] for entry in environ.split(b"\0") if entry)
    assert ctx.env[b"PT_LIVE"] == b"on"


# --- the working directory ---------------------------------------------------------


def cwd_seen(events: Events, started: list, directory: Path) -> tuple[ProcessContext, bytes]:
    """A process started in `directory` (made here): the context of its exec,
    and its working directory as /proc tells it."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = start(started, ["/bin/sleep", "30"], cwd=directory)
    wait_for_exec_into(proc.pid, b"sleep")
    ctx = events.last_exec(proc.pid).context
    assert ctx is not None and ctx.cwd is not None
    return ctx, os.readlink(f"/proc/{proc.pid}/cwd").encode()


def test_a_deep_cwd_is_resolved_whole(events: Events, started: list, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"level{i:02d}" for i in range(40)])
    ctx, real = cwd_seen(events, started, deep)
    assert not ctx.cwd_truncated and ctx.cwd == real == str(deep).encode()


def test_a_cwd_deeper_than_the_walk_says_it_is_truncated_and_gives_its_deepest_part(
    events: Events, started: list, tmp_path: Path
) -> None:
    ctx, real = cwd_seen(events, started, tmp_path.joinpath(*[f"d{i}" for i in range(80)]))
    assert ctx.cwd_truncated and ctx.cwd is not None
    assert not ctx.cwd.startswith(b"/")  # never mistaken for the whole path
    assert real.endswith(b"/" + ctx.cwd)
    assert ctx.cwd.endswith(b"/d79")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of our own at tmp_path/mnt, taken down after the test: a mount
    the working directory's walk must cross."""
    point = tmp_path / "mnt"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "ptcwd", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def test_a_cwd_inside_nested_mounts_is_resolved_across_them(events: Events, started: list, tmpfs: Path) -> None:
    inner = tmpfs / "a" / "inner"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "ptcwd2", str(inner)], check=True)
    try:
        deep = inner / "b" / "c"
        ctx, real = cwd_seen(events, started, deep)
        assert not ctx.cwd_truncated and ctx.cwd == real == str(deep).encode()
    finally:
        subprocess.run(["umount", "-l", str(inner)], check=True)  # lazily: the sleep may still be in it


@pytest.mark.parametrize("one_more", [False, True], ids=["64-steps", "65-steps"])
def test_the_walks_64_steps_count_those_on_both_sides_of_a_mounts_top(
    events: Events, started: list, tmpfs: Path, one_more: bool
) -> None:
    """Each name is a step and so is crossing a mount's top: a walk that needs
    64 steps is whole, one that needs 65 is cut, wherever the mount is."""
    above = len(tmpfs.parts) - 1  # the names from the mount point up to /
    inside = 64 - 1 - 1 - above + int(one_more)  # 64 steps: these, the crossing, those above
    deep = tmpfs.joinpath(*[f"m{i}" for i in range(inside)])
    ctx, real = cwd_seen(events, started, deep)
    if one_more:
        assert ctx.cwd_truncated and not ctx.cwd.startswith(b"/") and real.endswith(b"/" + ctx.cwd)
    else:
        assert not ctx.cwd_truncated and ctx.cwd == real == str(deep).encode()


def test_a_deleted_cwd_says_so(events: Events, started: list, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = start(started, ["/bin/sh", "-c", "cd gone && rmdir ../gone && exec /bin/sleep 30"], cwd=tmp_path)
    wait_for_exec_into(proc.pid, b"sleep")
    ctx = events.last_exec(proc.pid).context
    assert ctx is not None and ctx.cwd_deleted
    assert os.readlink(f"/proc/{proc.pid}/cwd") == f"{gone} (deleted)"
    assert ctx.cwd == str(gone).encode()


# --- the executable ----------------------------------------------------------------


def test_a_memfd_executable_is_fileless(events: Events, started: list) -> None:
    code = (
        "import os\n"
        "fd = os.memfd_create('ptlive', 0)\n"
        "with open('/bin/sleep', 'rb') as f: os.write(fd, f.read())\n"
        "os.execv(f'/proc/self/fd/{fd}', ['sleep', '30'])\n"
    )
    proc = start(started, [sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while not os.readlink(f"/proc/{proc.pid}/exe").startswith("/memfd:"):
        assert time.monotonic() < deadline, "the memfd exec never happened"
        time.sleep(0.01)
    ctx = events.last_exec(proc.pid).context
    assert ctx is not None
    assert os.readlink(f"/proc/{proc.pid}/exe") == "/memfd:ptlive (deleted)"
    assert ctx.exe_memfd and ctx.exe_deleted
    exe = os.stat(f"/proc/{proc.pid}/exe")
    assert (ctx.exe_dev, ctx.exe_ino) == (exe.st_dev, exe.st_ino)


def test_an_executable_unlinked_after_exec_is_deleted_not_memfd(events: Events, started: list, tmp_path: Path) -> None:
    copy = tmp_path / "sleepcopy"
    shutil.copy("/bin/sleep", copy)
    proc = start(started, ["/bin/sh", "-c", f"exec {copy} 30"])
    wait_for_exec_into(proc.pid, b"sleepcopy")
    exe = os.stat(f"/proc/{proc.pid}/exe")
    ctx = events.last_exec(proc.pid).context
    assert ctx is not None and not ctx.exe_deleted  # the name was there at exec
    assert (ctx.exe_dev, ctx.exe_ino) == (exe.st_dev, exe.st_ino)
    copy.unlink()
    # A second process execs the file by its descriptor after the unlink.
    fd = os.open(f"/proc/{proc.pid}/exe", os.O_RDONLY)
    try:
        late = start(started, [f"/proc/self/fd/{fd}", "30"], pass_fds=(fd,), executable=f"/proc/self/fd/{fd}")
        deadline = time.monotonic() + 10
        while not os.readlink(f"/proc/{late.pid}/exe").endswith("(deleted)"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.close(fd)
    ctx = events.last_exec(late.pid).context
    assert ctx is not None and ctx.exe_deleted and not ctx.exe_memfd


# --- credentials -------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="proctrace-ctx-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_setuid_root_binary_run_by_nobody_is_a_privilege_gain(
    events: Events, started: list, shared_dir: Path
) -> None:
    setuid_sleep = shared_dir / "suidsleep"
    shutil.copy("/bin/sleep", setuid_sleep)
    os.chown(setuid_sleep, 0, 0)
    setuid_sleep.chmod(0o4755)

    def become_nobody() -> None:
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)

    proc = start(started, [str(setuid_sleep), "30"], preexec_fn=become_nobody, cwd=shared_dir)
    wait_for_exec_into(proc.pid, b"suidsleep")
    uid, euid, suid, _fsuid = status_ids(proc.pid, b"Uid")
    assert (uid, euid, suid) == (65534, 0, 0), "the setuid bit did not take (a nosuid mount?)"
    ctx = events.last_exec(proc.pid).context
    assert ctx is not None and ctx.creds is not None and ctx.creds_before is not None
    assert (ctx.creds.uid, ctx.creds.euid, ctx.creds.suid) == (uid, euid, suid)
    assert ctx.creds.cap_effective == status_ids(proc.pid, b"CapEff")[0]
    assert (ctx.creds_before.uid, ctx.creds_before.euid) == (65534, 65534)
    assert ctx.creds_before.cap_effective == 0
    assert ctx.privilege_gain


def test_setuid_after_exec_is_a_cred_event_with_both_sides(events: Events, started: list) -> None:
    code = (
        "import os, sys, time\n"
        "os.setgroups([])\n"
        "os.setresgid(65534, 65534, 65534)\n"
        "os.setuid(65534)\n"
        "sys.stdout.write('changed\\n'); sys.stdout.flush()\n"
        "time.sleep(30)\n"
    )
    proc = start(started, [sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"changed\n"
    found = events.wait_for(lambda ev: isinstance(ev, CredEvent) and ev.tgid == proc.pid and ev.syscall == "setuid")
    assert len(found) == 1, found
    change = found[0]
    assert isinstance(change, CredEvent) and change.before is not None and change.after is not None
    uid, euid, suid, fsuid = status_ids(proc.pid, b"Uid")
    assert (change.after.uid, change.after.euid, change.after.suid, change.after.fsuid) == (uid, euid, suid, fsuid)
    assert change.after.cap_effective == status_ids(proc.pid, b"CapEff")[0] == 0
    assert (change.before.uid, change.before.gid) == (0, 65534)  # after setresgid, before setuid
    assert not change.privilege_gain
    gids = [ev for ev in events.seen if isinstance(ev, CredEvent) and ev.tgid == proc.pid]
    assert [ev.syscall for ev in gids] == ["setgroups", "setresgid", "setuid"] or [ev.syscall for ev in gids] == [
        "setresgid",
        "setuid",
    ]  # setgroups([]) changes nothing when there were no groups


# --- terminal, namespaces, cgroup --------------------------------------------------


def test_a_process_under_a_pty_names_its_terminal(events: Events, started: list) -> None:
    requires(shutil.which("script") is not None, "needs script(1) (util-linux)")
    proc = start(
        started,
        ["script", "-qec", "exec /bin/sleep 30", "/dev/null"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    found = events.wait_for(
        lambda ev: isinstance(ev, ExecEvent) and ev.ppid == proc.pid and ev.comm == b"sleep", timeout=10
    )
    assert found, "script's child never exec'd sleep"
    ev = found[-1]
    assert isinstance(ev, ExecEvent) and ev.context is not None
    tty = decode_tty_nr(int(stat_fields(ev.tgid)[4]))
    assert tty is not None and ev.context.tty == tty_name(*tty)
    assert ev.context.tty.startswith("pts/")
    assert ev.context.sid == int(stat_fields(ev.tgid)[3]) == ev.tgid  # script's child leads a new session


def test_the_first_process_of_a_new_pid_namespace_is_pid_1_there(events: Events, started: list) -> None:
    requires(shutil.which("unshare") is not None, "needs unshare(1) (util-linux)")
    proc = start(started, ["unshare", "--pid", "--fork", "--mount-proc", "/bin/sleep", "30"], start_new_session=True)
    found = events.wait_for(lambda ev: isinstance(ev, ExecEvent) and ev.ppid == proc.pid and ev.comm == b"sleep")
    assert found
    ev = found[-1]
    assert isinstance(ev, ExecEvent) and ev.context is not None
    assert ev.context.ns_pid == 1 == status_ids(ev.tgid, b"NSpid")[-1]
    assert ev.context.pidns == ns_inode(ev.tgid, "pid") != ns_inode(os.getpid(), "pid")
    assert ev.context.mntns == ns_inode(ev.tgid, "mnt") != ns_inode(os.getpid(), "mnt")
    os.killpg(proc.pid, signal.SIGKILL)


def unified_root() -> Path:
    for candidate in UNIFIED_CANDIDATES:
        if (candidate / "cgroup.procs").exists() and (candidate / "cgroup.controllers").exists():
            return candidate
    raise AssertionError("no cgroup v2 hierarchy mounted")


def test_every_event_of_a_process_in_a_cgroup_carries_its_id(events: Events, started: list) -> None:
    group = unified_root() / f"proctrace-live-{os.getpid()}"
    group.mkdir()
    try:
        code = "import sys; sys.stdin.readline(); import os; os.execv('/bin/sleep', ['sleep', '30'])"
        proc = start(started, [sys.executable, "-c", code], stdin=subprocess.PIPE)
        (group / "cgroup.procs").write_text(str(proc.pid))
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        wait_for_exec_into(proc.pid, b"sleep")
        line = next(li for li in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines() if li.startswith("0::"))
        assert line == f"0::/{group.name}"
        ev = events.last_exec(proc.pid)
        assert ev.cgroup_id == os.stat(group).st_ino
        proc.kill()
        proc.wait()
        exits = events.wait_for(lambda e: e.kind == "exit" and e.tgid == proc.pid)
        assert exits and all(e.cgroup_id == os.stat(group).st_ino for e in exits)
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        group.rmdir()
    made = events.wait_for(lambda e: e.kind == "cgroup" and e.path == f"/{group.name}".encode())
    assert [e.action for e in made] == ["mkdir", "rmdir"]
