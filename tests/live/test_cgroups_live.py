"""The snapshot's context and the cgroup table against the real /proc and the
real unified hierarchy, for processes this test starts in a cgroup it makes
(and removes): root, a cgroup2 mount, and bpftrace for the kernel's own id.

Only processes started here are touched, by their pid; only the cgroup made
here is written to.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proctrace.model.cgroups import CgroupTable, unified_mount
from proctrace.model.context import decode_tty_nr, tty_name
from proctrace.model.procsnap import ProcInfo, snapshot

from tests.environment import requires
from tests.live.conftest import ROOT

pytestmark = pytest.mark.live


@dataclass
class Cgroup:
    name: str
    directory: Path

    @property
    def path(self) -> bytes:
        return b"/" + self.name.encode()

    def enter(self, pid: int) -> None:
        (self.directory / "cgroup.procs").write_text(str(pid))


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    mount = unified_mount()
    requires(os.geteuid() == 0 and mount is not None, "needs root and a cgroup2 mount")
    assert mount is not None
    name = f"proctrace-test-{uuid.uuid4().hex[:8]}"
    directory = Path(mount) / name
    directory.mkdir()
    try:
        yield Cgroup(name, directory)
    finally:
        for child in sorted(directory.glob("*/"), reverse=True):
            if child.is_dir():
                child.rmdir()
        # The processes started here have been killed and reaped by now; a
        # cgroup with none left can go.
        deadline = time.monotonic() + 5
        while True:
            try:
                directory.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes a test starts: killed and reaped, by their pid, at its end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def entry_of(pid: int) -> ProcInfo:
    (found,) = [p for p in snapshot() if p.pid == pid]
    return found


def status_ids(pid: int, key: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return [int(v) for v in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_the_snapshot_context_of_a_process_in_a_cgroup_on_a_terminal_is_what_proc_says(
    cgroup: Cgroup, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    controller, terminal = pty.openpty()

    def own_session_on_the_pty() -> None:
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    workdir = tmp_path / "work dir"
    workdir.mkdir()
    sleeper = subprocess.Popen(
        ["sleep", "60"], cwd=workdir, stdin=terminal, preexec_fn=own_session_on_the_pty, pass_fds=(terminal,)
    )
    started.append(sleeper)
    terminal_name = os.ttyname(terminal).removeprefix("/dev/")  # "pts/N"
    os.close(terminal)
    try:
        cgroup.enter(sleeper.pid)
        pid = sleeper.pid
        ctx = entry_of(pid).context
        assert ctx is not None
        assert ctx.cwd == os.fsencode(workdir) and not ctx.cwd_deleted
        exe = os.stat(shutil.which("sleep") or "/usr/bin/sleep")
        assert (ctx.exe_dev, ctx.exe_ino) == (exe.st_dev, exe.st_ino)
        assert not (ctx.exe_memfd or ctx.exe_deleted)
        assert ctx.creds is not None
        uids, gids = status_ids(pid, "Uid"), status_ids(pid, "Gid")
        assert [ctx.creds.uid, ctx.creds.euid, ctx.creds.suid, ctx.creds.fsuid] == uids
        assert [ctx.creds.gid, ctx.creds.egid, ctx.creds.sgid, ctx.creds.fsgid] == gids
        cap_eff = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("CapEff")
        )
        assert ctx.creds.cap_effective == int(cap_eff.split()[1], 16)
        # Its own session, led by itself, on the pty it was given.
        assert ctx.sid == os.getsid(pid) == pid
        tty_nr = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
        device = decode_tty_nr(tty_nr)
        assert device is not None and ctx.tty == tty_name(*device)
        assert ctx.tty == terminal_name
        assert (ctx.pidns, ctx.mntns) == (os.stat(f"/proc/{pid}/ns/pid").st_ino, os.stat(f"/proc/{pid}/ns/mnt").st_ino)
        assert ctx.ns_pid == status_ids(pid, "NSpid")[-1]
        login_uid = int(Path(f"/proc/{pid}/loginuid").read_text())
        assert ctx.login_uid == (None if login_uid == 0xFFFFFFFF else login_uid)
        assert ctx.cgroup == cgroup.path
        assert Path(f"/proc/{pid}/cgroup").read_bytes().splitlines()[-1] == b"0::" + cgroup.path
    finally:
        os.close(controller)


def test_a_removed_working_directory_and_a_process_in_its_own_pid_namespace(
    cgroup: Cgroup, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    requires(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    workdir = tmp_path / "doomed"
    workdir.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"], cwd=workdir)
    started.append(sleeper)
    cgroup.enter(sleeper.pid)
    workdir.rmdir()
    ctx = entry_of(sleeper.pid).context
    assert ctx is not None and (ctx.cwd, ctx.cwd_deleted) == (os.fsencode(workdir), True)
    # unshare forks the sleep as pid 1 of a new pid namespace.
    inner = subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "60"])
    started.append(inner)
    deadline = time.monotonic() + 5
    while not (children := Path(f"/proc/{inner.pid}/task/{inner.pid}/children").read_text().split()):
        assert time.monotonic() < deadline, "unshare did not start its child"
        time.sleep(0.02)
    child = int(children[0])
    child_ctx = entry_of(child).context
    assert child_ctx is not None and child_ctx.ns_pid == 1
    assert child_ctx.pidns == os.stat(f"/proc/{child}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino


def test_the_table_names_a_cgroup_by_its_inode_and_finds_one_made_later_by_a_rescan(cgroup: Cgroup) -> None:
    table = CgroupTable.discover()
    assert table.live and table.mount == unified_mount()
    cgroup_id = cgroup.directory.stat().st_ino
    assert table.path_of(cgroup_id) == cgroup.path and table.id_of(cgroup.path) == cgroup_id
    # readdir's inode numbers, which the scan uses, are the directories' own.
    for entry in table.to_list():
        path = Path(str(table.mount) + entry["path"]) if entry["path"] != "/" else Path(str(table.mount))
        if path.exists():
            assert path.stat().st_ino == entry["id"]
    late = cgroup.directory / "late"
    late.mkdir()
    time.sleep(1.1)  # past the rescan interval
    assert table.path_of(late.stat().st_ino) == cgroup.path + b"/late"
    assert table.ancestors(late.stat().st_ino)[:2] == [late.stat().st_ino, cgroup_id]


def test_the_kernels_cgroup_id_is_the_tables(cgroup: Cgroup, started: list[subprocess.Popen[bytes]]) -> None:
    """bpftrace's `cgroup` is bpf_get_current_cgroup_id(): what the probes put on every event."""
    requires(shutil.which("bpftrace") is not None, "needs bpftrace")
    # A process that enters the cgroup itself, says so, then keeps calling getppid.
    procs = cgroup.directory / "cgroup.procs"
    code = (
        f"import os, time\nopen({str(procs)!r}, 'w').write(str(os.getpid()))\nprint('in', flush=True)\n"
        "while True:\n    os.getppid()\n    time.sleep(0.01)\n"
    )
    busy = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    started.append(busy)
    assert busy.stdout is not None and busy.stdout.readline() == b"in\n"  # only its calls from then on count
    program = f'tracepoint:syscalls:sys_enter_getppid /pid == {busy.pid}/ {{ printf("%llu\\n", cgroup); exit(); }}'
    out = subprocess.run(["bpftrace", "-e", program], capture_output=True, text=True, timeout=60)
    ids = [int(line) for line in out.stdout.splitlines() if line.isdigit()]  # not "Attaching 1 probe..."
    assert ids, out.stderr
    table = CgroupTable.discover()
    assert table.path_of(ids[0]) == cgroup.path


def test_proctrace_refuses_a_cgroup_that_does_not_exist_and_records_the_table(
    cgroup: Cgroup, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "proctrace", "--cgroup", cgroup.path.decode() + "-nope", "--", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert f"--cgroup /{cgroup.name}-nope: no such cgroup" in missing.stderr
    sleeper = subprocess.Popen(["sleep", "60"])
    started.append(sleeper)
    cgroup.enter(sleeper.pid)
    rec = tmp_path / "s.rec"
    given_as_directory = str(cgroup.directory)
    ran = subprocess.run(
        [sys.executable, "-m", "proctrace", "-q", "-w", str(rec), "--cgroup", given_as_directory, "--", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    header = json.loads(rec.read_text().splitlines()[0])
    assert {"id": cgroup.directory.stat().st_ino, "path": "/" + cgroup.name} in header["cgroups"]
    assert header["cgroup_mount"] == unified_mount()
    assert header["options"]["filters"]["cgroup"] == [given_as_directory]
    (entry,) = [p for p in header["snapshot"] if p["pid"] == sleeper.pid]
    assert entry["cgroup"] == "/" + cgroup.name and entry["cwd"] == os.getcwd()
