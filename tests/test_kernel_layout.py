"""tracer/kernel/layout.py: the kernel facts the BPF program is built with, and their cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from proctrace.kernel.layout import HELPERS, MEMBERS, helper_macro, kernel_offsets, macro_name, macro_names

from tests.environment import requires

VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.fixture
def readable_vmlinux() -> Path:
    requires(VMLINUX.exists() and os.access(VMLINUX, os.R_OK), f"{VMLINUX} is missing or not readable here")
    return VMLINUX


def test_facts_name_every_member_offset_and_every_helper(readable_vmlinux: Path, tmp_path: Path) -> None:
    facts = kernel_offsets(readable_vmlinux, tmp_path)
    assert set(facts) == macro_names()
    # Linux 5.5 added both user-read helpers; every kernel with BTF this project runs on has them.
    assert {h: facts[helper_macro(h)] for h in HELPERS} == dict.fromkeys(HELPERS, 1)


def test_a_second_start_reads_the_cache_instead_of_parsing_btf(readable_vmlinux: Path, tmp_path: Path) -> None:
    first = kernel_offsets(readable_vmlinux, tmp_path)
    (cache,) = tmp_path.glob("offsets-*.json")
    planted = {**first, macro_name(*MEMBERS[0]): 4242}
    cache.write_text(json.dumps(planted))
    assert kernel_offsets(readable_vmlinux, tmp_path) == planted


def test_a_cache_missing_a_fact_is_ignored_and_rewritten(readable_vmlinux: Path, tmp_path: Path) -> None:
    """A cache written by an older proctrace, before the helper facts, is not trusted."""
    first = kernel_offsets(readable_vmlinux, tmp_path)
    (cache,) = tmp_path.glob("offsets-*.json")
    cache.write_text(json.dumps({k: v for k, v in first.items() if not k.startswith("KHAS_")}))
    assert kernel_offsets(readable_vmlinux, tmp_path) == first
    assert json.loads(cache.read_text()) == first
