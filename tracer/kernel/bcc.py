"""Finding and importing bcc's Python module, wherever the distribution put it.

bcc is not on PyPI (the PyPI project named `bcc` is an unrelated lattice library);
it comes from the distribution's package (python3-bpfcc on Debian/Ubuntu,
python3-bcc on Fedora) and lands in the system interpreter's package directory.
proctrace usually runs from a virtualenv that cannot see that directory, so this
module imports the bcc package alone from there. Putting the whole system
dist-packages on sys.path would shadow the virtualenv's own rich and pytest.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from proctrace.kernel.errors import KernelError

BCC_INSTALL_FIX = "apt-get install python3-bpfcc (Debian/Ubuntu) or dnf install python3-bcc (Fedora)"


class BccUnavailable(KernelError):
    """No usable bcc: the message says why and how to install the real one."""


# Where distributions install bcc's Python package, most common first.
DISTRO_BCC_PATTERNS: tuple[str, ...] = (
    "/usr/lib/python3/dist-packages/bcc",  # Debian, Ubuntu
    "/usr/lib/python3/site-packages/bcc",
    "/usr/lib/python3*/site-packages/bcc",  # Fedora (noarch)
    "/usr/lib64/python3*/site-packages/bcc",  # Fedora, openSUSE
    "/usr/local/lib/python3*/dist-packages/bcc",  # built from source on Debian/Ubuntu
    "/usr/local/lib/python3*/site-packages/bcc",  # built from source elsewhere
    "/usr/lib/python3*/dist-packages/bcc",
)


def distro_bcc_dirs(patterns: Iterable[str] = DISTRO_BCC_PATTERNS) -> list[Path]:
    """Existing bcc package directories, in search order; newest Python first per pattern."""
    found: list[Path] = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern), reverse=True):
            path = Path(match)
            if (path / "__init__.py").is_file() and path not in found:
                found.append(path)
    return found


def is_real_bcc(module: types.ModuleType | None) -> bool:
    """True for the BPF Compiler Collection, false for PyPI's unrelated `bcc`."""
    return module is not None and hasattr(module, "BPF")


def load_bcc(candidates: Iterable[Path] | None = None) -> types.ModuleType:
    """Return the bcc module, importing it from the distribution's directory if needed.

    `candidates` replaces the distribution directories searched (tests pass empty
    or fake ones). Raises BccUnavailable, with the fix, when no usable bcc exists.
    """
    cached = sys.modules.get("bcc")
    if is_real_bcc(cached):
        return cached  # type: ignore[return-value]

    impostor: str | None = None
    module, error = _import_normally()
    if is_real_bcc(module):
        return module  # type: ignore[return-value]
    if module is not None:
        impostor = getattr(module, "__file__", None) or "?"
        _forget_bcc()

    dirs = distro_bcc_dirs() if candidates is None else [Path(c) for c in candidates]
    for directory in dirs:
        if not (directory / "__init__.py").is_file():
            continue
        module, error = _import_from_dir(directory)
        if is_real_bcc(module):
            return module  # type: ignore[return-value]
        _forget_bcc()
        if module is not None:
            impostor = impostor or str(directory)

    raise BccUnavailable(_absent_message(impostor, error))


@contextlib.contextmanager
def _quiet_compile() -> Iterator[None]:
    """bcc 0.26's regexes have invalid escapes: the warnings are bcc's, and only noise to our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        yield


def _import_normally() -> tuple[types.ModuleType | None, str | None]:
    try:
        with _quiet_compile():
            return importlib.import_module("bcc"), None
    except ModuleNotFoundError as exc:
        if exc.name != "bcc":  # bcc exists but one of its own imports is missing
            return None, str(exc)
        return None, None
    except (ImportError, OSError) as exc:  # e.g. libbcc.so.0 missing behind a present module
        _forget_bcc()
        return None, str(exc)


def _import_from_dir(directory: Path) -> tuple[types.ModuleType | None, str | None]:
    """Import `directory` as the top-level package `bcc`, and only that package."""
    init = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location("bcc", init, submodule_search_locations=[str(directory)])
    if spec is None or spec.loader is None:
        return None, f"cannot load {init}"
    module = importlib.util.module_from_spec(spec)
    # Registered before executing: bcc's own `from .libbcc import ...` looks it up there.
    sys.modules["bcc"] = module
    try:
        with _quiet_compile():
            spec.loader.exec_module(module)
    except Exception as exc:  # a broken install may fail in any way; report it, don't crash
        _forget_bcc()
        return None, f"{directory} failed to import: {exc}"
    return module, None


def _forget_bcc() -> None:
    """Drop a rejected or half-imported bcc so the next attempt starts clean."""
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]


def _absent_message(impostor: str | None, error: str | None) -> str:
    if error:
        return f"bcc is installed but does not load ({error}). Reinstall it: {BCC_INSTALL_FIX}."
    if impostor:
        return (
            f"The `bcc` module found ({impostor}) is PyPI's unrelated lattice library, not the BPF Compiler "
            f"Collection; remove it (pip uninstall bcc) and install the real one: {BCC_INSTALL_FIX}."
        )
    return f"bcc (the BPF Compiler Collection's Python module) is not installed. Install it: {BCC_INSTALL_FIX}."
