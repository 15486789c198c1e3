"""The start-up section's own measures (bench/startup.py), checked against
processes this test starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proctrace.bench.startup import _descendants, _imports_bcc, _peak_of, tree_rss_kb


def test_the_process_tree_holds_the_children_and_their_children() -> None:
    parent = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = 50
        while len(_descendants(parent.pid)) < 3 and deadline:
            subprocess.run(["sleep", "0.05"])
            deadline -= 1
        tree = _descendants(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 3
        assert tree_rss_kb(parent.pid) > 0
    finally:
        for pid in reversed(_descendants(parent.pid)):
            subprocess.run(["kill", str(pid)])  # ours, by pid
        parent.wait()


def test_an_import_of_bcc_is_seen_and_none_is_not_invented(tmp_path: Path) -> None:
    fake = tmp_path / "bcc"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    env_path = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
    assert _imports_bcc([sys.executable, "-c", env_path + "import bcc"])
    assert not _imports_bcc([sys.executable, "-c", env_path + "import json"])


def test_the_peak_of_a_command_grows_with_what_it_allocates() -> None:
    small = _peak_of([sys.executable, "-c", "pass"])
    large = _peak_of([sys.executable, "-c", "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"])
    assert large - small > 50 * 1024
