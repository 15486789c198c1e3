"""bcc is imported from the distribution's directory alone, and never confused with PyPI's `bcc`.

Fake bcc packages in temporary directories stand in for the distribution's, for
PyPI's unrelated lattice library and for a broken install; the real `import bcc`
is blocked so the tests behave the same on machines with and without bcc.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from proctrace.kernel.bcc import BccUnavailable, distro_bcc_dirs, load_bcc

REAL_BCC = """
from .libbcc import lib  # a relative import: the package must work as `bcc`
__version__ = "0.26.0"
class BPF:
    pass
"""
LATTICE_BCC = "def lattice():\n    return []\n"


class BlockTopLevelBcc(importlib.abc.MetaPathFinder):
    """Makes plain `import bcc` fail as if no bcc were on sys.path (submodules still resolve)."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "bcc":
            raise ModuleNotFoundError("No module named 'bcc'", name="bcc")


@pytest.fixture(autouse=True)
def isolated_bcc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide any real bcc and put sys.modules back afterwards."""
    saved = {name: mod for name, mod in sys.modules.items() if name == "bcc" or name.startswith("bcc.")}
    for name in saved:
        del sys.modules[name]
    monkeypatch.setattr(sys, "meta_path", [BlockTopLevelBcc(), *sys.meta_path])
    yield
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def make_package(parent: Path, init: str, **modules: str) -> Path:
    package = parent / "bcc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(init)
    for name, text in modules.items():
        (package / f"{name}.py").write_text(text)
    return package


def make_distro_bcc(parent: Path) -> Path:
    return make_package(parent, REAL_BCC, libbcc="lib = object()\n")


def test_distro_bcc_is_imported_as_the_bcc_package(tmp_path: Path) -> None:
    package = make_distro_bcc(tmp_path / "dist-packages")
    bcc = load_bcc(candidates=[package])
    assert hasattr(bcc, "BPF")
    assert bcc.__version__ == "0.26.0"
    assert sys.modules["bcc"] is bcc
    assert sys.modules["bcc.libbcc"].lib is bcc.lib


def test_distro_directory_is_not_put_on_sys_path(tmp_path: Path) -> None:
    dist_packages = tmp_path / "dist-packages"
    load_bcc(candidates=[make_distro_bcc(dist_packages)])
    assert str(dist_packages) not in sys.path
    assert str(dist_packages / "bcc") not in sys.path


def test_missing_bcc_names_the_debian_and_fedora_packages(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BccUnavailable) as info:
        load_bcc(candidates=[tmp_path / "empty"])
    message = str(info.value)
    assert "not installed" in message
    assert "apt-get install python3-bpfcc" in message
    assert "dnf install python3-bcc" in message


def test_pypi_lattice_bcc_is_rejected_with_advice_to_uninstall_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_package(tmp_path / "site-packages", LATTICE_BCC)
    monkeypatch.setattr(sys, "meta_path", sys.meta_path[1:])  # let `import bcc` find the impostor
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    with pytest.raises(BccUnavailable) as info:
        load_bcc(candidates=[])
    assert "unrelated" in str(info.value)
    assert "pip uninstall bcc" in str(info.value)
    assert "bcc" not in sys.modules


def test_pypi_lattice_bcc_on_path_gives_way_to_the_distro_bcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(tmp_path / "site-packages", LATTICE_BCC)
    monkeypatch.setattr(sys, "meta_path", sys.meta_path[1:])
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    bcc = load_bcc(candidates=[make_distro_bcc(tmp_path / "dist-packages")])
    assert hasattr(bcc, "BPF")


def test_lattice_bcc_in_a_distro_directory_is_rejected(tmp_path: Path) -> None:
    impostor = make_package(tmp_path / "dist-packages", LATTICE_BCC)
    with pytest.raises(BccUnavailable, match="unrelated"):
        load_bcc(candidates=[impostor])


def test_broken_distro_bcc_reports_why_it_does_not_load(tmp_path: Path) -> None:
    broken = make_package(tmp_path / "dist-packages", "raise OSError('libbcc.so.0: cannot open shared object file')\n")
    with pytest.raises(BccUnavailable) as info:
        load_bcc(candidates=[broken])
    assert "does not load" in str(info.value)
    assert "libbcc.so.0" in str(info.value)
    assert "bcc" not in sys.modules


def test_later_candidate_is_tried_when_an_earlier_one_is_broken(tmp_path: Path) -> None:
    broken = make_package(tmp_path / "a", "raise ImportError('half installed')\n")
    bcc = load_bcc(candidates=[broken, make_distro_bcc(tmp_path / "b")])
    assert hasattr(bcc, "BPF")


def test_already_imported_bcc_is_reused(tmp_path: Path) -> None:
    first = load_bcc(candidates=[make_distro_bcc(tmp_path / "dist-packages")])
    assert load_bcc(candidates=[]) is first


def test_distro_search_covers_debian_and_fedora_layouts(tmp_path: Path) -> None:
    debian = make_distro_bcc(tmp_path / "usr/lib/python3/dist-packages")
    fedora = make_distro_bcc(tmp_path / "usr/lib64/python3.12/site-packages")
    make_package(tmp_path / "usr/lib64/python3.11/site-packages/empty", "")  # not a bcc dir: wrong depth
    patterns = (
        str(tmp_path / "usr/lib/python3/dist-packages/bcc"),
        str(tmp_path / "usr/lib64/python3*/site-packages/bcc"),
        str(tmp_path / "usr/local/lib/python3*/dist-packages/bcc"),
    )
    assert distro_bcc_dirs(patterns) == [debian, fedora]
