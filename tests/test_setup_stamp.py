"""scripts/proctrace's fast path: the stamp of what the last full set-up
verified, on a copy of the checkout's layout (the real .venv is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """scripts/setup, a pyproject.toml, one source file and a venv's files."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "tracer").mkdir()
    (tmp_path / "tracer" / "cli.py").write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "proctrace"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / ".venv" / ".proctrace-installed").write_text("stamp\n")
    past = time.time() - 60  # made a minute ago, as the set-up left them
    for path in tmp_path.rglob("*"):
        os.utime(path, (past, past))
    return tmp_path


def _run(checkout: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source {checkout}/scripts/setup; {script}"], capture_output=True, text=True, timeout=30
    )


def ready(checkout: Path) -> bool:
    return _run(checkout, "proctrace_ready").returncode == 0


def test_ready_only_once_a_full_set_up_marked_it(checkout: Path) -> None:
    assert not ready(checkout)
    assert _run(checkout, "proctrace_mark_ready").returncode == 0
    assert ready(checkout)


def test_an_edited_source_makes_the_next_run_set_up_again(checkout: Path) -> None:
    _run(checkout, "proctrace_mark_ready")
    source = checkout / "tracer" / "cli.py"
    source.write_text("# edited\n")
    later = time.time() + 5
    os.utime(source, (later, later))
    assert not ready(checkout)  # its byte-code would be stale


def test_a_changed_project_file_or_venv_makes_the_next_run_set_up_again(checkout: Path) -> None:
    _run(checkout, "proctrace_mark_ready")
    project = checkout / "pyproject.toml"
    project.write_text("[project]\nname = 'x'\ndependencies = ['rich']\n")
    later = time.time() + 5  # past the stamp whatever the file system's clock granularity
    os.utime(project, (later, later))
    assert not ready(checkout)
    _run(checkout, "proctrace_mark_ready")
    (checkout / ".venv" / "bin" / "proctrace").unlink()
    assert not ready(checkout)


def test_a_stamp_made_with_the_test_tools_is_not_one_without(checkout: Path) -> None:
    _run(checkout, "proctrace_mark_ready --test-tools")
    assert not ready(checkout)
    assert _run(checkout, "proctrace_ready --test-tools").returncode == 0


def test_a_new_source_file_makes_the_next_run_set_up_again(checkout: Path) -> None:
    _run(checkout, "proctrace_mark_ready")
    (checkout / "tracer" / "kernel").mkdir()
    added = checkout / "tracer" / "kernel" / "new.py"
    added.write_text("")
    later = time.time() + 5
    os.utime(added, (later, later))
    assert not ready(checkout)


@pytest.mark.parametrize("edited", ["tracer/kernel/_fastwire.c", "tracer/_slots.h", "bpf/event.h"])
def test_an_edited_compiled_module_source_makes_the_next_run_set_up_again(checkout: Path, edited: str) -> None:
    """Its compiled module, built in place by pip, would be stale: the set-up installs again."""
    _run(checkout, "proctrace_mark_ready")
    source = checkout / edited
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("/* edited */\n")
    later = time.time() + 5
    os.utime(source, (later, later))
    assert not ready(checkout)


def test_the_install_stamp_changes_with_the_compiled_module_sources(checkout: Path) -> None:
    (checkout / "tracer" / "kernel").mkdir()
    (checkout / "bpf").mkdir()
    source = checkout / "tracer" / "kernel" / "_fastwire.c"
    source.write_text("/* one */\n")
    (checkout / "bpf" / "event.h").write_text("/* header */\n")
    (checkout / ".venv" / "bin" / "python").write_text("#!/bin/sh\necho 3.11\n")
    before = _run(checkout, "_setup_install_stamp").stdout
    source.write_text("/* two */\n")
    after = _run(checkout, "_setup_install_stamp").stdout
    assert before.strip() and before != after
