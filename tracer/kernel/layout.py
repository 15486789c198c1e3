"""What the BPF program needs to know of the running kernel, from its BTF: the
offsets of the struct members it reads, and which BPF helpers the kernel has.

Parsing vmlinux BTF costs ~0.2 s, so the answer is cached per kernel build
(release + build string + BTF size): a different kernel never reuses offsets.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from proctrace.kernel.btf import Btf, BtfError

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
CACHE_DIR = Path(os.environ.get("PROCTRACE_CACHE_DIR", "/var/cache/proctrace"))

# (struct, member): every kernel struct member the BPF programs read.
MEMBERS: tuple[tuple[str, str], ...] = (
    ("task_struct", "real_parent"),
    ("task_struct", "group_leader"),
    ("task_struct", "tgid"),
    ("task_struct", "start_time"),
    ("task_struct", "exit_code"),
    ("task_struct", "mm"),
    ("task_struct", "signal"),
    ("task_struct", "flags"),
    ("task_struct", "pid"),
    ("task_struct", "comm"),
    ("task_struct", "ptrace"),
    ("task_struct", "parent"),
    ("task_struct", "sighand"),
    ("sighand_struct", "action"),
    ("k_sigaction", "sa.sa_handler"),
    ("kernel_siginfo", "si_code"),
    ("mm_struct", "arg_start"),
    ("mm_struct", "arg_end"),
    ("signal_struct", "flags"),
    ("signal_struct", "group_exit_code"),
    ("signal_struct", "live"),
)


# Structs whose size the BPF programs need (to index an array of them): KSIZE_<struct>.
SIZES: tuple[str, ...] = ("k_sigaction",)

# BPF helpers the program calls under its own name where the kernel has them
# (bpf/proctrace.bpf.c says why): KHAS_<helper> is 1 or 0.
HELPERS: tuple[str, ...] = ("BPF_FUNC_probe_read_user", "BPF_FUNC_probe_read_user_str")


def macro_name(struct: str, member: str) -> str:
    """KOFF_task_struct_pid; a path through embedded structs joins with "_"."""
    return f"KOFF_{struct}_{member.replace('.', '_')}"


def size_macro(struct: str) -> str:
    return f"KSIZE_{struct}"


def helper_macro(helper: str) -> str:
    return f"KHAS_{helper}"


def macro_names() -> set[str]:
    return {macro_name(s, m) for s, m in MEMBERS} | {size_macro(s) for s in SIZES} | {helper_macro(h) for h in HELPERS}


def offsets_from_btf(btf: Btf) -> dict[str, int]:
    """The prelude's kernel facts: member offsets, struct sizes, and 1 or 0 for
    each helper (whether the kernel's enum bpf_func_id names it)."""
    facts = {macro_name(s, m): btf.offsetof(s, m) for s, m in MEMBERS}
    facts.update({size_macro(s): btf.sizeof(s) for s in SIZES})
    known = btf.enumerators("bpf_func_id")
    facts.update({helper_macro(h): int(h in known) for h in HELPERS})
    return facts


def _build_key(btf_path: Path) -> str:
    uname = platform.uname()
    st = btf_path.stat()
    raw = f"{uname.release}|{uname.version}|{st.st_size}|{MEMBERS}|{SIZES}|{HELPERS}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def kernel_offsets(btf_path: Path = VMLINUX_BTF, cache_dir: Path | None = CACHE_DIR) -> dict[str, int]:
    """Offsets for the running kernel, from the cache when this build was seen before."""
    if not btf_path.exists():
        raise BtfError(f"{btf_path} is missing: this kernel was built without BTF (CONFIG_DEBUG_INFO_BTF)")
    cache_file = cache_dir / f"offsets-{_build_key(btf_path)}.json" if cache_dir else None
    if cache_file is not None:
        try:
            cached = json.loads(cache_file.read_text())
            if set(cached) == macro_names():
                return {k: int(v) for k, v in cached.items()}
        except (OSError, ValueError):
            pass
    offsets = offsets_from_btf(Btf.from_file(btf_path))
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(offsets))
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only cache only costs the 0.2 s parse next time
    return offsets
