"""`proctrace doctor` reports each prerequisite, exits 0 only when live tracing will work, and changes nothing."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from fakehost import ALL_TRACEPOINTS, REQUIRED_TRACEPOINTS, fake_bcc, make_host
from proctrace import doctor as doctor_module
from proctrace.doctor import run_doctor
from proctrace.kernel import prereqs
from proctrace.kernel.bcc import BccUnavailable, _absent_message
from proctrace.kernel.prereqs import TRACEPOINTS, Check, Status
from proctrace.kernel.program import BPF_SOURCES


def no_bcc() -> object:
    raise BccUnavailable(_absent_message(impostor=None, error=None))


@pytest.fixture(autouse=True)
def forbid_mounting(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(host: prereqs.Host) -> None:
        raise AssertionError("doctor must not mount tracefs")

    monkeypatch.setattr(prereqs, "mount_tracefs", refuse)


def doctor(host: prereqs.Host, bcc_loader=fake_bcc) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(out, host=host, bcc_loader=bcc_loader)
    return code, out.getvalue()


def line_for(report: str, name: str) -> str:
    return next(line for line in report.splitlines() if f" {name} " in line)


def test_ready_machine_exits_zero_with_every_check_ticked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_module, "check_compiled", lambda: Check("compiled decoder", Status.OK, "compiled"))
    code, report = doctor(make_host(tmp_path))
    assert code == 0
    assert report.count("✓") == 8 + len(TRACEPOINTS)
    assert "✗" not in report
    assert report.rstrip().endswith("Live tracing will work.")


def test_every_tracepoint_is_listed(tmp_path: Path) -> None:
    _, report = doctor(make_host(tmp_path))
    assert all(f"tracepoint {tp.name}" in report for tp in TRACEPOINTS)


def test_unprivileged_user_fails_with_sudo_fix(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, root=False))
    assert code == 1
    assert line_for(report, "privileges").lstrip().startswith("✗")
    assert "fix: run it as root: sudo proctrace" in report
    assert "1 problem(s) (privileges)" in report


def test_missing_bcc_fails_with_debian_and_fedora_packages(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path), bcc_loader=no_bcc)
    assert code == 1
    assert "✗ bcc" in report
    assert "apt-get install python3-bpfcc" in report
    assert "dnf install python3-bcc" in report


def test_bcc_version_and_location_are_shown(tmp_path: Path) -> None:
    _, report = doctor(make_host(tmp_path))
    assert "0.26.0 at /usr/lib/python3/dist-packages/bcc" in line_for(report, "bcc")


def test_bpf_sources_are_checked_where_the_program_reads_them(tmp_path: Path) -> None:
    _, report = doctor(make_host(tmp_path))
    assert line_for(report, "sources").lstrip().startswith("✓ BPF sources")
    assert ", ".join(BPF_SOURCES) in report


def test_missing_bpf_sources_fail_with_the_path_and_a_reinstall_fix(tmp_path: Path) -> None:
    empty = tmp_path / "site-packages" / "proctrace" / "bpf"
    empty.mkdir(parents=True)
    code, report = doctor(replace(make_host(tmp_path / "host"), bpf_dir=empty))
    assert code == 1
    assert "✗ BPF sources" in report
    assert str(empty / BPF_SOURCES[0]) in report
    assert "fix: reinstall proctrace" in report
    assert report.rstrip().endswith("1 problem(s) (BPF sources).")


def test_missing_header_tree_fails_with_install_fix(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, headers="none"))
    assert code == 1
    assert "✗ kernel headers" in report
    assert "linux-headers-amd64" in report
    assert "kernel-devel" in report


def test_missing_btf_fails(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, btf=False))
    assert code == 1
    assert "✗ BTF" in report


def test_kernel_without_tracefs_fails(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, tracefs="unsupported"))
    assert code == 1
    assert "✗ tracefs" in report


def test_gaps_fixed_automatically_still_exit_zero_and_say_so(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, tracefs="unmounted", headers="installed"))
    assert code == 0
    assert "automatically" in line_for(report, "tracefs")
    assert "automatically" in line_for(report, "headers")


def test_doctor_mounts_and_links_nothing(tmp_path: Path) -> None:
    host = make_host(tmp_path, tracefs="unmounted", headers="installed")
    before = sorted(os.walk(tmp_path))
    doctor(host)
    assert sorted(os.walk(tmp_path)) == before
    assert not host.build_link.exists()


def test_missing_required_tracepoint_fails(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, tracepoints=ALL_TRACEPOINTS - {"task:task_newtask"}))
    assert code == 1
    assert line_for(report, "task:task_newtask").lstrip().startswith("✗")


def test_missing_syscall_tracepoints_warn_but_exit_zero(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, tracepoints=REQUIRED_TRACEPOINTS))
    assert code == 0
    assert line_for(report, "syscalls:sys_enter_wait4").lstrip().startswith("!")
    assert "reaps" in report
    assert "with the limits marked '!'" in report


def test_old_kernel_without_ring_buffer_warns_but_exits_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereqs, "_probe_ringbuf_map", lambda: False)
    code, report = doctor(make_host(tmp_path, release="5.4.0-150-generic"))
    assert code == 0
    assert line_for(report, "ring buffer").lstrip().startswith("!")


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    code, report = doctor(make_host(tmp_path, root=False, btf=False, headers="none"), bcc_loader=no_bcc)
    assert code == 1
    assert "4 problem(s)" in report
    assert report.count("✗") == 4


def test_ascii_only_stream_gets_ascii_marks(tmp_path: Path) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    code = run_doctor(stream, host=make_host(tmp_path, root=False), bcc_loader=fake_bcc)
    stream.flush()
    report = raw.getvalue().decode("ascii")
    assert code == 1
    assert "XX privileges" in report
    assert "ok bcc" in report


def test_the_compiled_decoder_and_renderer_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from proctrace import PURE_PYTHON_ENV
    from proctrace.formats import stream
    from proctrace.kernel import wire
    from proctrace.model import redact

    monkeypatch.setattr(wire, "COMPILED", object())
    monkeypatch.setattr(stream, "_faststream", object())
    monkeypatch.setattr(redact, "COMPILED_HINT", object())
    assert doctor_module.check_compiled().status is Status.OK
    monkeypatch.setattr(redact, "COMPILED_HINT", None)
    assert "redaction test run in Python" in doctor_module.check_compiled().detail
    monkeypatch.setattr(redact, "COMPILED_HINT", object())
    monkeypatch.setattr(wire, "COMPILED", None)
    monkeypatch.setattr(wire, "DECODER", "not built (No module named '_fastwire')")
    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
    check = doctor_module.check_compiled()
    assert check.status is Status.WARN and check.ok  # slower, not broken
    assert "decoder run in Python" in check.detail and "python3-dev" in check.fix
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    assert doctor_module.check_compiled().fix == f"unset {PURE_PYTHON_ENV}"
