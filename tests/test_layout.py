"""The package's layout is its architecture: these tests keep it so.

The folders under tracer/ are layers of one pipeline (README, "Architecture"):
the model knows nothing of the kernel, the formats or the session; the kernel
side and the formats build on the model only; the session joins them; the
command line sits on top. An import that crosses a layer the wrong way, or a
cycle between modules, fails here rather than in a reviewer's head.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "tracer"

# What each sub-package may import from proctrace, besides itself and the
# package's own __init__ (its version).
ALLOWED = {
    "model": set(),
    "kernel": {"model"},
    "formats": {"model"},
    "top": {"model", "formats"},  # the live view: a sink that draws, beside the formats
    "export": {"model", "formats"},  # --metrics and --otlp: sinks, beside the formats
    "session": {"model", "kernel", "formats", "top", "export"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("proctrace", *parts))


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """Every proctrace module `path` imports, at any depth of its code (an import
    inside a function is still a dependency, only a later one)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from proctrace.formats import text` imports proctrace.formats.text.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name in known:
                yield name


def dependency_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(path, known)) - {name} for name, path in found.items()}


def layer(module: str) -> str | None:
    """The sub-package a module belongs to; None for top-level modules (cli, doctor)."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE_DIR / parts[1]).is_dir():
        return parts[1]
    return None


def test_the_import_package_is_proctrace_and_each_layer_is_a_sub_package() -> None:
    names = set(modules())
    assert {"proctrace", "proctrace.cli"} <= names
    for sub in ALLOWED:
        assert f"proctrace.{sub}" in names, f"tracer/{sub}/__init__.py is missing"


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_states_its_job_in_a_docstring(module: str) -> None:
    tree = ast.parse(modules()[module].read_text())
    docstring = ast.get_docstring(tree)
    assert docstring, f"{module} has no module docstring"


def test_no_layer_imports_a_layer_above_it() -> None:
    wrong = []
    for module, deps in dependency_graph().items():
        own = layer(module)
        if own not in ALLOWED:
            continue  # the command line, doctor and the bench may use every layer
        for dep in deps:
            other = layer(dep)
            if other is not None and other != own and other not in ALLOWED[own]:
                wrong.append(f"{module} imports {dep}")
            if other is None and dep != "proctrace":
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = dependency_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checks_see_a_cycle_and_a_wrong_way_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules above must be able to fail: a fake tree with both faults."""
    (tmp_path / "model").mkdir()
    (tmp_path / "formats").mkdir()
    (tmp_path / "__init__.py").write_text('"""p"""\n')
    (tmp_path / "model" / "__init__.py").write_text('"""m"""\n')
    (tmp_path / "formats" / "__init__.py").write_text('"""f"""\n')
    (tmp_path / "model" / "a.py").write_text('"""a"""\nfrom proctrace.formats.b import x\n')
    (tmp_path / "formats" / "b.py").write_text('"""b"""\nfrom proctrace.model import a\n')
    monkeypatch.setattr(f"{__name__}.PACKAGE_DIR", tmp_path)
    graph = dependency_graph()
    assert graph["proctrace.model.a"] == {"proctrace.formats.b"}
    assert graph["proctrace.formats.b"] == {"proctrace.model", "proctrace.model.a"}
    with pytest.raises(AssertionError, match=r"proctrace\.model\.a imports proctrace\.formats\.b"):
        test_no_layer_imports_a_layer_above_it()
    with pytest.raises(AssertionError, match=r"proctrace\.formats\.b -> proctrace\.model\.a -> proctrace\.formats\.b"):
        test_no_import_cycles()
