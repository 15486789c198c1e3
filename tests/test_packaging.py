"""The wheel, installed the ordinary way (not editable) into a new virtual environment, traces live.

Builds the wheel from a copy of the checkout, installs it with pip into a
virtual environment made for the purpose (rich and its dependencies come from
pip's configured index, or its cache), and runs the installed `proctrace` from
outside the checkout, so nothing can be imported from the source tree. bcc is
not on PyPI: the installed proctrace finds the distribution's, as it does for
users. Marked live: like tests/live/, it needs root and BPF; without them it is
skipped on a developer's machine and fails in CI (tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.environment import requires

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[1]
# Left out of the copy the wheel is built from: what git ignores, and the history.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".*_cache", ".hypothesis", ".bench"
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a directory away from the checkout, to run the installed commands in

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def proctrace(self) -> Path:
        return self.venv / "bin" / "proctrace"

    def site_packages(self) -> Path:
        found = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(found.stdout.strip())

    def run(self, *command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            cwd=self.outside,
            env=environment_without_the_checkout(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def environment_without_the_checkout() -> dict[str, str]:
    """This environment, minus what would let the installed proctrace import the checkout's."""
    return {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}


def pip(python: str | Path, *args: str | Path) -> None:
    subprocess.run(
        [str(python), "-m", "pip", *map(str, args), "--quiet", "--disable-pip-version-check"],
        env=environment_without_the_checkout(),
        check=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel and install it into a new virtual environment, once for this module (~15 s)."""
    can_make_venv = importlib.util.find_spec("venv") is not None and importlib.util.find_spec("ensurepip") is not None
    requires(can_make_venv, "needs Python's venv and ensurepip (Debian/Ubuntu: apt-get install python3-venv)")
    scratch = tmp_path_factory.mktemp("packaging")
    source = scratch / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", scratch / "dist", source)
    (wheel,) = (scratch / "dist").glob("proctrace-*.whl")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    pip(venv / "bin" / "python", "install", wheel)
    outside = scratch / "elsewhere"
    outside.mkdir()
    return Installed(wheel, venv, outside)


def source_files(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so"  # .so: built in place
    }


# The compiled modules' C sources: the wheel ships what they compile to.
EXTENSION_SOURCES = {"kernel/_fastwire.c", "formats/_faststream.c", "model/_fastredact.c", "_slots.h"}


def test_the_wheel_holds_every_file_of_tracer_and_bpf_under_proctrace_and_nothing_else(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    top_level = {name.split("/")[0] for name in names}
    name, version = installed.wheel.name.split("-")[:2]
    assert top_level == {"proctrace", f"{name}-{version}.dist-info"}
    expected = {f"proctrace/{name}" for name in source_files(ROOT / "tracer") - EXTENSION_SOURCES}
    expected |= {f"proctrace/bpf/{name}" for name in source_files(ROOT / "bpf")}
    assert expected - names == set(), "files of tracer/ or bpf/ that the wheel does not ship"
    assert {"proctrace/bpf/event.h", "proctrace/bpf/proctrace.bpf.c"} <= names


def test_the_wheel_holds_the_compiled_decoder_renderer_and_redaction_test(installed: Installed) -> None:
    """Built with the wheel, and the ones the installed package uses."""
    names = zipfile.ZipFile(installed.wheel).namelist()
    for module in ("proctrace/kernel/_fastwire", "proctrace/formats/_faststream", "proctrace/model/_fastredact"):
        assert any(n.startswith(module) and n.endswith(".so") for n in names), module
    used = installed.run(
        installed.python,
        "-c",
        "from proctrace.kernel import wire; from proctrace.formats import stream; from proctrace.model import redact; "
        "print(wire.DECODER, stream._faststream is not None, redact.COMPILED_HINT is not None)",
    )
    assert used.stdout.split() == ["compiled", "True", "True"], used.stdout + used.stderr


def test_nothing_named_tracer_is_installed(installed: Installed) -> None:
    site_packages = installed.site_packages()
    assert not list(site_packages.glob("tracer*"))
    assert (site_packages / "proctrace" / "bpf" / "proctrace.bpf.c").is_file()
    imported = installed.run(installed.python, "-c", "import tracer")
    assert "ModuleNotFoundError: No module named 'tracer'" in imported.stderr


def test_the_installed_package_is_the_one_imported(installed: Installed) -> None:
    where = installed.run(installed.python, "-c", "import proctrace.kernel.program as p; print(p.__file__, p.BPF_DIR)")
    module, bpf_dir = where.stdout.split()
    site_packages = installed.site_packages()
    assert Path(module) == site_packages / "proctrace" / "kernel" / "program.py"
    assert Path(bpf_dir) == site_packages / "proctrace" / "bpf"


def test_the_installed_doctor_finds_the_bpf_sources_in_the_package(installed: Installed) -> None:
    report = installed.run(installed.proctrace, "--doctor")
    assert report.returncode == 0, report.stdout + report.stderr
    sources = next(line for line in report.stdout.splitlines() if "BPF sources" in line)
    assert str(installed.site_packages() / "proctrace" / "bpf") in sources


def test_the_installed_command_traces_a_command_live_and_exits_with_its_status(installed: Installed) -> None:
    traced = installed.run(installed.proctrace, "--json", "--", "sh", "-c", "exit 3")
    assert "Traceback" not in traced.stderr, traced.stderr
    assert traced.returncode == 3, traced.stderr
    events = [json.loads(line) for line in traced.stdout.splitlines()]
    (shell,) = [e for e in events if e["type"] == "exec" and e["argv"] == ["sh", "-c", "exit 3"]]
    (exit_event,) = [e for e in events if e["type"] == "exit" and e["tgid"] == shell["pid"] and e["process_exit"]]
    assert (exit_event["exit_code"], exit_event["signal"]) == (3, None)
