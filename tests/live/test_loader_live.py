"""The loader helper on the real kernel: the session never maps bcc or LLVM,
and a helper that fails or dies leaves nothing attached, as the kernel's own
accounts (bpftool, /proc/PID/maps) say."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from proctrace.kernel.layout import kernel_offsets
from proctrace.kernel.loader import LoaderError, _receive, _send, start_loader
from proctrace.kernel.probe import SESSION_MAPS, read_formats
from proctrace.kernel.program import ProgramOptions, build_source, shared_attachments

from tests.environment import requires
from tests.live.conftest import ROOT


def _attached_by(pid: int) -> list[dict]:
    """The BPF programs attached through perf events or raw tracepoints held
    open by `pid`, as bpftool lists them."""
    out = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True, check=True).stdout
    return [entry for entry in json.loads(out or "[]") if entry.get("pid") == pid]


def _requirements() -> None:
    requires(os.geteuid() == 0, "needs root")
    requires(shutil.which("bpftool") is not None, "needs bpftool (scripts/setup --test-tools installs it)")


def _program() -> tuple[str, list[tuple[str, str]]]:
    formats = read_formats()
    return build_source(kernel_offsets(), formats, ProgramOptions()), shared_attachments(formats)


def test_a_helper_killed_with_the_programs_attached_leaves_nothing_attached() -> None:
    _requirements()
    source, attach = _program()
    loader = start_loader()
    request = {"source": source, "attach": [list(a) for a in attach], "maps": list(SESSION_MAPS), "hold": True}
    _send(loader.sock, request)
    held, _ = _receive(loader.sock)
    assert held == {"held": True}
    attached = _attached_by(loader.pid)
    # Every tracepoint the program uses, attached by the helper alone
    assert len(attached) >= 10, attached
    os.kill(loader.pid, signal.SIGKILL)
    with pytest.raises(LoaderError, match="was killed by SIGKILL"):
        loader.load(source, attach, SESSION_MAPS)
    deadline = time.monotonic() + 10
    ids = {entry["prog_id"] for entry in attached}
    while time.monotonic() < deadline and _attached_by(loader.pid):
        time.sleep(0.05)
    assert _attached_by(loader.pid) == []
    # And the programs themselves are gone from the kernel
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ids & {p["id"] for p in progs}:
        time.sleep(0.1)
        progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout)
    assert not ids & {p["id"] for p in progs}


def test_a_helper_killed_while_compiling_is_one_clear_error() -> None:
    _requirements()
    source, attach = _program()
    loader = start_loader()
    threading.Timer(0.3, os.kill, (loader.pid, signal.SIGKILL)).start()  # the compile takes far longer
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(LoaderError, match=rf"the BPF loader \(pid {loader.pid}\) was killed by SIGKILL"):
        loader.load(source, attach, SESSION_MAPS)
    assert set(os.listdir("/proc/self/fd")) <= before
    assert _attached_by(loader.pid) == []


def test_a_program_that_does_not_compile_is_one_message_and_nothing_attached() -> None:
    _requirements()
    loader = start_loader()
    with pytest.raises(LoaderError, match="the BPF program did not load"):
        loader.load("int broken( {", [], SESSION_MAPS)
    assert _attached_by(loader.pid) == []


def test_the_session_maps_neither_bcc_nor_llvm(tmp_path: Path) -> None:
    """The running tracer's own address space, from /proc: the compiler lived
    only in the helper, which is gone by the time the session is ready."""
    _requirements()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proctrace", "--json", "-o", str(tmp_path / "e.jsonl"), "--", "sleep", "3"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline()]
        while lines[-1] and "tracing" not in lines[-1]:
            lines.append(proc.stderr.readline())
        assert "tracing" in lines[-1], lines
        time.sleep(0.5)  # the command is released just after the line
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libbcc" not in maps and "LLVM" not in maps and "clang" not in maps.lower()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        # Only the traced command is left: the helper has exited
        assert all(Path(f"/proc/{c}/comm").read_text().strip() == "sleep" for c in children), children
        assert len(_attached_by(proc.pid)) >= 10  # the session holds the attachments itself
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "perf"])
def test_the_program_without_btf_task_pointers_loads_on_this_kernel(ring: bool) -> None:
    """Kernels before 5.11 lack bpf_get_current_task_btf: the program then reads
    every field through bpf_probe_read_kernel (KREAD), the path this kernel
    never takes by itself. Here it must still compile, pass the verifier and
    attach, with every option that adds code."""
    _requirements()
    formats = read_formats()
    offsets = {**kernel_offsets(), "KHAS_BPF_FUNC_get_current_task_btf": 0}
    options = ProgramOptions(
        ring_buffer=ring, follow=True, follow_children=True, match_comms=True, env=True, cgroup_filter=True
    )
    source = build_source(offsets, formats, options)
    assert "#define KHAS_BPF_FUNC_get_current_task_btf 0" in source
    loaded = start_loader().load(source, shared_attachments(formats), SESSION_MAPS)
    try:
        assert len(loaded.attachment_fds) >= 10  # every tracepoint attached
    finally:
        loaded.close()
