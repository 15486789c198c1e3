"""Loading the programs from their cached image on the real kernel: no
compiler and no helper, the same events as a compile gives, and a refused or
damaged image costs a compile, never an attachment left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from proctrace.kernel.image import AttachSpec, ImageError, ProgramSpec, load_image, read_cached, write_cached
from proctrace.kernel.probe import SESSION_MAPS, Probe, plan_program
from proctrace.kernel.program import ProgramOptions
from proctrace.model.events import ExecEvent, ExitEvent

from tests.environment import requires
from tests.live.conftest import ROOT


def _attached_by(pid: int) -> int:
    out = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True, check=True).stdout
    return sum(1 for entry in json.loads(out or "[]") if entry.get("pid") == pid)


def _requirements() -> None:
    requires(os.geteuid() == 0, "needs root")
    requires(shutil.which("bpftool") is not None, "needs bpftool (scripts/setup --test-tools installs it)")


def _sees_a_command(probe: Probe) -> None:
    """A command run now shows up as its exec and its exit, through this probe."""
    marker = f"pt-image-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["/bin/sh", "-c", "exit 4", marker])
    assert proc.returncode == 4
    deadline, seen = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        events, _ = probe.drain()
        seen += events
        execs = [e for e in seen if isinstance(e, ExecEvent) and marker.encode() in e.argv]
        if execs:
            exits = [e for e in seen if isinstance(e, ExitEvent) and e.tgid == execs[0].tgid and e.process_exit]
            if exits:
                assert exits[0].status.exit_code == 4
                return
        time.sleep(0.05)
    pytest.fail(f"the probe never saw {marker}'s exec and exit")


def test_a_compile_is_cached_and_the_image_gives_the_same_events(tmp_path: Path) -> None:
    _requirements()
    options = ProgramOptions()
    first = Probe(options, cache_dir=tmp_path)
    handed_over = set(first._loaded.map_fds)
    try:
        assert not first.from_cache
        _sees_a_command(first)
    finally:
        first.close()
    image = read_cached(plan_program(options, tmp_path).key, tmp_path)
    assert image is not None, "the compile left no image"
    # Under the program's names for them, not the kernel's 15 bytes ("selected_cgroup")
    assert handed_over <= {m.name for m in image.maps}
    second = Probe(options, cache_dir=tmp_path)
    try:
        assert second.from_cache
        _sees_a_command(second)
        assert _attached_by(os.getpid()) >= 10  # this process holds the attachments itself
    finally:
        second.close()
    assert _attached_by(os.getpid()) == 0


def test_an_image_the_kernel_refuses_costs_a_compile_that_replaces_it(tmp_path: Path) -> None:
    _requirements()
    options = ProgramOptions()
    plan = plan_program(options, tmp_path)
    probe = Probe(options, cache_dir=tmp_path)  # a good image, to damage
    probe.close()
    good = read_cached(plan.key, tmp_path)
    assert good is not None
    # "exit" with r0 never set: the verifier refuses it
    refused = ProgramSpec(good.programs[0].name, good.programs[0].type, bytes.fromhex("9500000000000000"), ())
    write_cached(dataclasses.replace(good, programs=(refused, *good.programs[1:])), tmp_path)
    probe = Probe(options, cache_dir=tmp_path)
    try:
        assert not probe.from_cache
        _sees_a_command(probe)
    finally:
        probe.close()
    assert read_cached(plan.key, tmp_path) == good


def test_an_image_that_fails_half_way_leaves_nothing_attached(tmp_path: Path) -> None:
    _requirements()
    options = ProgramOptions()
    Probe(options, cache_dir=tmp_path).close()
    image = read_cached(plan_program(options, tmp_path).key, tmp_path)
    assert image is not None
    # Every real attachment is made before this one fails
    broken = dataclasses.replace(image, attachments=(*image.attachments, AttachSpec(0, "nosuch:event", False)))
    before = _attached_by(os.getpid())
    fds_before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ImageError, match="nosuch:event"):
        load_image(broken, SESSION_MAPS)
    assert _attached_by(os.getpid()) == before
    assert set(os.listdir("/proc/self/fd")) <= fds_before


# Thirty children that live for an instant, forked as fast as the shell can
FLURRY = "/bin/true a; for i in $(seq 30); do /bin/true child $i & done; wait; exit 5"


def test_the_command_line_traces_the_same_from_a_compile_and_from_the_cache(tmp_path: Path) -> None:
    _requirements()
    runs = []
    for name in ("compiled", "cached"):
        out = tmp_path / f"{name}.jsonl"
        proc = subprocess.run(
            [sys.executable, "-m", "proctrace", "--json", "-o", str(out), "--", "sh", "-c", FLURRY],
            cwd=ROOT,
            env={**os.environ, "PROCTRACE_CACHE_DIR": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 5, proc.stderr
        events = [json.loads(line) for line in out.read_text().splitlines()]
        # Lifecycle events only: how many SIGCHLDs are delivered depends on how
        # many were already pending, which differs run to run.
        lifecycle = [e for e in events if e["type"] in ("fork", "exec", "exit", "reap")]
        runs.append([(e["type"], e.get("argv"), e.get("exit_code")) for e in lifecycle])
    # The same events, in an order that may differ where two CPUs raced
    assert sorted(runs[0], key=repr) == sorted(runs[1], key=repr)
    assert ("exec", ["/bin/true", "a"], None) in runs[0]
    # Follow mode caught every short-lived child, either way
    for run in runs:
        children = {tuple(argv) for kind, argv, _ in run if kind == "exec" and argv and argv[1:2] == ["child"]}
        assert children == {("/bin/true", "child", str(i)) for i in range(1, 31)}


def test_an_image_without_a_map_the_session_needs_is_compiled_again(tmp_path: Path) -> None:
    """As an image made with the kernel's 15-byte map names would be ("selected_cgroup")."""
    _requirements()
    options = ProgramOptions(cgroup_filter=True)
    plan = plan_program(options, tmp_path)
    Probe(options, cache_dir=tmp_path).close()
    good = read_cached(plan.key, tmp_path)
    assert good is not None
    cut = tuple(dataclasses.replace(m, name=m.name[:15]) for m in good.maps)
    write_cached(dataclasses.replace(good, maps=cut), tmp_path)
    before = _attached_by(os.getpid())
    probe = Probe(options, cache_dir=tmp_path)
    try:
        assert not probe.from_cache
        probe.select_cgroups([1])
    finally:
        probe.close()
    assert _attached_by(os.getpid()) == before
    assert read_cached(plan.key, tmp_path) == good


# A load the verifier refuses: BREAD through bpf_get_current_task()'s result,
# a plain number to it, where only a BTF pointer may be read through.
REFUSED_BTF_READ = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 v = 0;
    void *task = (void *)bpf_get_current_task();
    BREAD(v, task, KOFF_task_struct_pid);
    return v == 12345;
}
"""


def test_a_kernel_that_refuses_the_btf_reads_gets_the_same_program_with_probe_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older kernel's verifier may refuse a read through a BTF pointer that
    this one takes: the session then loads the program whose reads are all
    bpf_probe_read_kernel, sees the same events, and the next session loads
    that one from the cache without trying again."""
    _requirements()
    from proctrace.kernel import probe as probe_module

    real_build = probe_module.build_source

    def refused_with_btf_reads(offsets, formats, options):  # type: ignore[no-untyped-def]
        source = real_build(offsets, formats, options)
        return source + REFUSED_BTF_READ if offsets[probe_module.BTF_TASK_HELPER] == 1 else source

    monkeypatch.setattr(probe_module, "build_source", refused_with_btf_reads)
    options = ProgramOptions()
    probe = Probe(options, cache_dir=tmp_path)
    try:
        assert probe.fallback_error is not None and "did not load" in probe.fallback_error
        assert not probe.btf_reads
        _sees_a_command(probe)
    finally:
        probe.close()
    assert _attached_by(os.getpid()) == 0
    again = Probe(options, cache_dir=tmp_path)
    try:
        assert again.from_cache and not again.btf_reads and again.fallback_error is None
        _sees_a_command(again)
    finally:
        again.close()
