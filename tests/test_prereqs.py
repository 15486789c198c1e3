"""Each missing prerequisite of live tracing is caught with its own message and fix.

Runs without root: every check reads a fake machine laid out by tests/fakehost.py.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from fakehost import ALL_TRACEPOINTS, REQUIRED_TRACEPOINTS, add_debian_headers, fake_bcc, make_host
from proctrace.kernel import prereqs
from proctrace.kernel.bcc import BccUnavailable
from proctrace.kernel.prereqs import (
    TRACEPOINTS,
    Host,
    PrereqError,
    Status,
    all_checks,
    check_bpf_sources,
    check_btf,
    check_header_tree,
    check_privileges,
    check_ring_buffer,
    check_tracefs,
    check_tracepoint,
    ensure_live_ready,
    find_header_trees,
    link_header_tree,
)
from proctrace.kernel.program import BPF_DIR, BPF_SOURCES


def no_bcc() -> object:
    raise BccUnavailable("bcc (the BPF Compiler Collection's Python module) is not installed. Install it: ...")


@pytest.fixture(autouse=True)
def never_mount(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record mounts instead of making them: tests run without root."""
    calls: list[Path] = []
    monkeypatch.setattr(prereqs, "mount_tracefs", lambda host: calls.append(host.tracefs))
    return calls


def tracepoint(name: str) -> prereqs.Tracepoint:
    return next(tp for tp in TRACEPOINTS if tp.name == name)


# ---- privileges ------------------------------------------------------------


def test_root_with_all_capabilities_passes(tmp_path: Path) -> None:
    check = check_privileges(make_host(tmp_path))
    assert check.status is Status.OK
    assert "root" in check.detail


def test_unprivileged_user_is_told_to_use_sudo_and_which_capabilities_lack(tmp_path: Path) -> None:
    check = check_privileges(make_host(tmp_path, root=False))
    assert check.status is Status.FAIL
    assert "uid 1000" in check.detail
    assert all(cap in check.detail for cap in ("CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"))
    assert "sudo" in check.fix


def test_missing_cap_bpf_alone_is_reported(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    host.proc_status.write_text("Uid:\t1000\t1000\t1000\t1000\nCapEff:\t" + f"{(1 << 38) | (1 << 21):016x}\n")
    check = check_privileges(host)
    assert check.status is Status.FAIL
    assert "without CAP_BPF" in check.detail
    assert "CAP_PERFMON" not in check.detail


def test_kernel_without_cap_bpf_needs_only_cap_sys_admin(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    host.cap_last_cap.write_text("37\n")  # before 5.8: CAP_BPF and CAP_PERFMON do not exist
    host.proc_status.write_text("Uid:\t0\t0\t0\t0\nCapEff:\t" + f"{1 << 21:016x}\n")
    assert check_privileges(host).status is Status.OK


# ---- BPF sources ----------------------------------------------------------------


def host_with_bpf_sources(tmp_path: Path, present: tuple[str, ...] = BPF_SOURCES) -> Host:
    """A ready machine whose proctrace reads its C from a temporary folder holding `present`."""
    bpf_dir = tmp_path / "bpf"
    bpf_dir.mkdir()
    for name in present:
        (bpf_dir / name).write_text(f"/* {name} */\n")
    return replace(make_host(tmp_path / "host"), bpf_dir=bpf_dir)


def test_present_bpf_sources_pass_and_name_their_folder(tmp_path: Path) -> None:
    host = host_with_bpf_sources(tmp_path)
    check = check_bpf_sources(host)
    assert check.status is Status.OK
    assert str(host.bpf_dir) in check.detail


@pytest.mark.parametrize("missing", BPF_SOURCES)
def test_a_missing_bpf_source_fails_with_its_path_and_the_reinstall_fix(tmp_path: Path, missing: str) -> None:
    host = host_with_bpf_sources(tmp_path, present=tuple(name for name in BPF_SOURCES if name != missing))
    check = check_bpf_sources(host)
    assert check.status is Status.FAIL
    assert f"{host.bpf_dir / missing} (No such file or directory)" in check.detail
    assert "reinstall proctrace" in check.fix


def test_a_bpf_source_that_cannot_be_read_fails(tmp_path: Path) -> None:
    host = host_with_bpf_sources(tmp_path, present=BPF_SOURCES[1:])
    (host.bpf_dir / BPF_SOURCES[0]).mkdir()  # unreadable even by root, unlike a chmod 000 file
    check = check_bpf_sources(host)
    assert check.status is Status.FAIL
    assert str(host.bpf_dir / BPF_SOURCES[0]) in check.detail


def test_a_bpf_source_that_is_not_text_fails(tmp_path: Path) -> None:
    host = host_with_bpf_sources(tmp_path)
    (host.bpf_dir / BPF_SOURCES[-1]).write_bytes(b"\xff\xfe\x00garbage")
    check = check_bpf_sources(host)
    assert check.status is Status.FAIL
    assert f"{host.bpf_dir / BPF_SOURCES[-1]} (not text)" in check.detail


def test_the_checked_folder_is_the_one_the_program_is_built_from(tmp_path: Path) -> None:
    assert Host().bpf_dir == BPF_DIR
    assert make_host(tmp_path).bpf_dir == BPF_DIR
    assert check_bpf_sources(Host()).status is Status.OK  # this checkout has its C


# ---- BTF ----------------------------------------------------------------------


def test_missing_btf_fails_and_names_the_kernel_option(tmp_path: Path) -> None:
    check = check_btf(make_host(tmp_path, btf=False))
    assert check.status is Status.FAIL
    assert "vmlinux is missing" in check.detail
    assert "CONFIG_DEBUG_INFO_BTF" in check.fix


# ---- tracefs --------------------------------------------------------------------


def test_mounted_tracefs_passes(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    check = check_tracefs(host)
    assert check.status is Status.OK
    assert str(host.tracefs) in check.detail


def test_unmounted_tracefs_is_fixed_automatically(tmp_path: Path) -> None:
    check = check_tracefs(make_host(tmp_path, tracefs="unmounted"))
    assert check.status is Status.AUTO
    assert check.ok
    assert "automatically" in check.detail


def test_kernel_without_tracefs_fails(tmp_path: Path) -> None:
    check = check_tracefs(make_host(tmp_path, tracefs="unsupported"))
    assert check.status is Status.FAIL
    assert "CONFIG_TRACING" in check.fix


# ---- kernel header tree -------------------------------------------------------------


def test_linked_header_tree_passes(tmp_path: Path) -> None:
    check = check_header_tree(make_host(tmp_path))
    assert check.status is Status.OK
    assert "linux-headers-6.1.0-56-amd64" in check.detail


def test_installed_but_unlinked_headers_are_linked_automatically(tmp_path: Path) -> None:
    check = check_header_tree(make_host(tmp_path, headers="installed"))
    assert check.status is Status.AUTO
    assert "automatically" in check.detail


def test_no_header_tree_fails_and_says_how_to_install_one(tmp_path: Path) -> None:
    check = check_header_tree(make_host(tmp_path, headers="none"))
    assert check.status is Status.FAIL
    assert "sudo ./scripts/proctrace" in check.fix
    assert "linux-headers-amd64" in check.fix
    assert "kernel-devel" in check.fix


def test_kernel_provided_kheaders_count_as_a_header_tree(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="none")
    host.kheaders.write_bytes(b"xz")
    assert check_header_tree(host).status is Status.OK


def test_bcc_kernel_source_variable_counts_as_a_header_tree(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="none")
    host.env["BCC_KERNEL_SOURCE"] = str(tmp_path)
    assert check_header_tree(host).status is Status.OK


def test_header_search_prefers_newest_tree_of_this_architecture_with_its_common_half(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="none")
    add_debian_headers(host.src_dir, "6.1.0-20")
    newest = add_debian_headers(host.src_dir, "6.1.0-56")
    add_debian_headers(host.src_dir, "6.9.0-1", flavour="arm64", arch_config="CONFIG_ARM64")
    add_debian_headers(host.src_dir, "6.1.0-56", flavour="cloud-amd64")
    trees = find_header_trees(host)
    assert trees[0].build == newest
    assert trees[0].source == host.src_dir / "linux-headers-6.1.0-56-common"
    assert all("arm64" not in tree.build.name or "amd64" in tree.build.name for tree in trees)


def test_header_search_prefers_the_running_release(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="none", release="5.10.0-9-amd64")
    add_debian_headers(host.src_dir, "6.1.0-56")
    exact = add_debian_headers(host.src_dir, "5.10.0-9")
    assert find_header_trees(host)[0].build == exact


def test_fedora_merged_tree_is_found_without_a_source_half(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="none")
    tree = host.src_dir / "kernels" / "6.5.6-300.fc39.x86_64"
    (tree / "include/generated").mkdir(parents=True)
    (tree / "include/generated/autoconf.h").write_text("#define CONFIG_X86_64 1\n")
    (tree / "Makefile").write_text("VERSION = 6\n")
    (found,) = find_header_trees(host)
    assert found.build == tree
    assert found.source is None


def test_linking_creates_build_and_source_links(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="installed")
    linked = link_header_tree(host, find_header_trees(host)[0])
    assert len(linked) == 2
    assert host.build_link.resolve() == host.src_dir / "linux-headers-6.1.0-56-amd64"
    assert host.source_link.resolve() == host.src_dir / "linux-headers-6.1.0-56-common"
    assert check_header_tree(host).status is Status.OK


def test_linking_replaces_a_dangling_link_left_by_a_removed_package(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="installed")
    host.build_link.parent.mkdir(parents=True)
    host.build_link.symlink_to(tmp_path / "gone")
    assert check_header_tree(host).status is Status.AUTO
    link_header_tree(host, find_header_trees(host)[0])
    assert host.build_link.is_dir()


def test_build_link_without_debians_source_half_gets_it_linked(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    host.source_link.unlink()
    check = check_header_tree(host)
    assert check.status is Status.AUTO
    assert "source" in check.detail


# ---- ring buffer ---------------------------------------------------------------


@pytest.mark.parametrize("release", ["5.8.0", "6.1.0-56-amd64", "6.18.44-fc-v669"])
def test_ring_buffer_is_supported_from_5_8(tmp_path: Path, release: str) -> None:
    host = make_host(tmp_path, release=release)
    assert check_ring_buffer(host, probe=lambda: False).status is Status.OK


def test_old_kernel_without_ring_buffer_warns_of_perf_buffer_fallback(tmp_path: Path) -> None:
    check = check_ring_buffer(make_host(tmp_path, release="5.4.0-150-generic"), probe=lambda: False)
    assert check.status is Status.WARN
    assert "perf buffer" in check.detail


def test_backported_ring_buffer_on_old_kernel_is_detected_by_probe(tmp_path: Path) -> None:
    check = check_ring_buffer(make_host(tmp_path, release="4.18.0-513.el8.x86_64"), probe=lambda: True)
    assert check.status is Status.OK


# ---- tracepoints ------------------------------------------------------------------


def test_every_tracepoint_present_in_tracefs_passes(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    assert all(check_tracepoint(host, tp).status is Status.OK for tp in TRACEPOINTS)


def test_missing_required_tracepoint_fails(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracepoints=ALL_TRACEPOINTS - {"sched:sched_process_exec"})
    check = check_tracepoint(host, tracepoint("sched:sched_process_exec"))
    assert check.status is Status.FAIL
    assert "needs it" in check.detail and "sched:sched_process_exec" in check.detail


def test_missing_syscall_tracepoint_only_warns(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracepoints=REQUIRED_TRACEPOINTS)
    check = check_tracepoint(host, tracepoint("syscalls:sys_exit_execve"))
    assert check.status is Status.WARN
    assert "failed execs" in check.detail
    assert "CONFIG_FTRACE_SYSCALLS" in check.fix


def test_tracepoints_are_found_in_kernel_symbols_while_tracefs_is_unmounted(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracefs="unmounted")
    checks = [check_tracepoint(host, tp) for tp in TRACEPOINTS]
    assert all(c.status is Status.OK and "kernel symbols" in c.detail for c in checks)


def test_syscall_tracepoints_are_missing_when_the_config_lacks_ftrace_syscalls(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracefs="unmounted")
    host.kconfig.write_bytes(__import__("gzip").compress(b"# CONFIG_FTRACE_SYSCALLS is not set\n"))
    assert check_tracepoint(host, tracepoint("syscalls:sys_enter_wait4")).status is Status.WARN
    assert check_tracepoint(host, tracepoint("sched:sched_process_fork")).status is Status.OK


def test_unknowable_tracepoints_defer_to_the_automatic_mount(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracefs="unmounted")
    host.kallsyms.unlink()
    assert check_tracepoint(host, tracepoint("task:task_newtask")).status is Status.AUTO


# ---- ensure_live_ready ---------------------------------------------------------------


def test_ready_machine_passes_silently(tmp_path: Path, never_mount: list[Path]) -> None:
    log = io.StringIO()
    ensure_live_ready(make_host(tmp_path), bcc_loader=fake_bcc, log=log)
    assert log.getvalue() == ""
    assert never_mount == []


def test_unmounted_tracefs_gets_mounted(tmp_path: Path, never_mount: list[Path]) -> None:
    host = make_host(tmp_path, tracefs="unmounted")
    ensure_live_ready(host, bcc_loader=fake_bcc, log=io.StringIO())
    assert never_mount == [host.tracefs]


def test_unlinked_headers_get_linked_and_said_once(tmp_path: Path) -> None:
    host = make_host(tmp_path, headers="installed")
    first, second = io.StringIO(), io.StringIO()
    ensure_live_ready(host, bcc_loader=fake_bcc, log=first)
    ensure_live_ready(host, bcc_loader=fake_bcc, log=second)
    assert host.build_link.is_dir()
    assert first.getvalue().count("proctrace: linked") == 1
    assert second.getvalue() == ""


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"root": False}, "sudo proctrace"),
        ({"btf": False}, "CONFIG_DEBUG_INFO_BTF"),
        ({"tracefs": "unsupported"}, "no tracefs"),
        ({"headers": "none"}, "linux-headers-amd64"),
        ({"tracepoints": ALL_TRACEPOINTS - {"signal:signal_generate"}}, "signal:signal_generate"),
    ],
)
def test_each_missing_prerequisite_stops_live_tracing_with_its_own_message(
    tmp_path: Path, broken: dict[str, object], expected: str
) -> None:
    host = make_host(tmp_path, **broken)  # type: ignore[arg-type]
    with pytest.raises(PrereqError, match=expected.replace(".", r"\.")):
        ensure_live_ready(host, bcc_loader=fake_bcc, log=io.StringIO())


def test_missing_bpf_sources_stop_live_tracing_naming_the_file(tmp_path: Path) -> None:
    host = host_with_bpf_sources(tmp_path, present=())
    with pytest.raises(PrereqError) as info:
        ensure_live_ready(host, bcc_loader=fake_bcc, log=io.StringIO())
    message = str(info.value)
    assert all(str(host.bpf_dir / name) in message for name in BPF_SOURCES)
    assert "Fix: reinstall proctrace" in message
    assert "\n" not in message


def test_missing_bcc_stops_live_tracing_with_install_command(tmp_path: Path) -> None:
    with pytest.raises(PrereqError, match="not installed"):
        ensure_live_ready(make_host(tmp_path), bcc_loader=no_bcc, log=io.StringIO())


def test_error_messages_are_one_or_two_sentences_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PrereqError) as info:
        ensure_live_ready(make_host(tmp_path, headers="none"), bcc_loader=fake_bcc, log=io.StringIO())
    message = str(info.value)
    assert "\n" not in message
    assert message.count(". ") <= 2
    assert "Fix:" in message


def test_all_checks_only_reads(tmp_path: Path, never_mount: list[Path]) -> None:
    host = make_host(tmp_path, tracefs="unmounted", headers="installed")
    before = sorted(os.walk(tmp_path))
    checks = all_checks(host, bcc_loader=fake_bcc)
    assert sorted(os.walk(tmp_path)) == before
    assert never_mount == []
    assert [c.status for c in checks if c.name in ("tracefs", "kernel headers")] == [Status.AUTO, Status.AUTO]


def test_default_host_describes_this_machine() -> None:
    host = Host()
    assert host.release == os.uname().release
    assert host.build_link == Path("/lib/modules") / os.uname().release / "build"


def test_missing_bcc_message_is_passed_through_unchanged(tmp_path: Path) -> None:
    with pytest.raises(PrereqError) as info:
        ensure_live_ready(make_host(tmp_path), bcc_loader=no_bcc, log=io.StringIO())
    assert str(info.value).startswith("bcc (the BPF Compiler Collection's Python module) is not installed.")
    assert ".." not in str(info.value)
