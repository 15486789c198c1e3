"""What the BPF program needs to know of the running kernel, from its BTF: the
offsets of the struct members it reads, and which BPF helpers the kernel has.

Parsing vmlinux BTF costs ~0.2 s, so the answer is cached per kernel build
(release + build string + BTF size): a different kernel never reuses offsets.
"""

from __future__ import annotations

import json
import os
import platform
import zlib
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
    # Where and as whom an exec runs (issue 13): the working directory's
    # dentry chain across mounts, the executable's inode, credentials, the
    # controlling terminal and session, namespaces, supplementary groups.
    ("task_struct", "fs"),
    ("task_struct", "real_cred"),
    ("task_struct", "thread_pid"),
    ("task_struct", "nsproxy"),
    ("fs_struct", "pwd"),
    ("fs_struct", "root"),
    ("path", "dentry"),
    ("path", "mnt"),
    ("dentry", "d_parent"),
    ("dentry", "d_name.name"),
    ("dentry", "d_hash.pprev"),
    ("mount", "mnt"),
    ("mount", "mnt_parent"),
    ("mount", "mnt_mountpoint"),
    ("vfsmount", "mnt_root"),
    ("mm_struct", "exe_file"),
    ("mm_struct", "env_start"),
    ("mm_struct", "env_end"),
    ("file", "f_inode"),
    ("file", "f_path.dentry"),
    ("inode", "i_ino"),
    ("inode", "i_sb"),
    ("super_block", "s_dev"),
    ("super_block", "s_magic"),
    ("cred", "uid"),
    ("cred", "euid"),
    ("cred", "suid"),
    ("cred", "fsuid"),
    ("cred", "gid"),
    ("cred", "egid"),
    ("cred", "sgid"),
    ("cred", "fsgid"),
    ("cred", "cap_effective"),
    ("cred", "group_info"),
    ("group_info", "ngroups"),
    ("group_info", "gid"),
    ("signal_struct", "tty"),
    ("signal_struct", "pids"),
    ("tty_struct", "index"),
    ("tty_struct", "driver"),
    ("tty_driver", "major"),
    ("tty_driver", "minor_start"),
    ("pid", "level"),
    ("pid", "numbers"),
    ("upid", "nr"),
    ("upid", "ns"),
    ("pid_namespace", "ns.inum"),
    ("nsproxy", "mnt_ns"),
    ("mnt_namespace", "ns.inum"),
    # What a process used, at its exit (issue 14).
    ("signal_struct", "utime"),
    ("signal_struct", "stime"),
    ("signal_struct", "sum_sched_runtime"),
    ("signal_struct", "min_flt"),
    ("signal_struct", "maj_flt"),
    ("signal_struct", "nvcsw"),
    ("signal_struct", "nivcsw"),
    ("signal_struct", "maxrss"),
    ("task_struct", "utime"),
    ("task_struct", "stime"),
    ("task_struct", "se.sum_exec_runtime"),
    ("task_struct", "min_flt"),
    ("task_struct", "maj_flt"),
    ("task_struct", "nvcsw"),
    ("task_struct", "nivcsw"),
    ("mm_struct", "hiwater_rss"),
    ("mm_struct", "rss_stat"),
    ("percpu_counter", "count"),
)

# Members a kernel may be built without (the audit login uid and session need
# CONFIG_AUDIT): KOFF_<struct>_<member> is -1 where missing, and the program
# leaves their fields unset.
OPTIONAL_MEMBERS: tuple[tuple[str, str], ...] = (
    ("task_struct", "loginuid"),
    ("task_struct", "sessionid"),
    # Storage I/O accounting needs CONFIG_TASK_IO_ACCOUNTING.
    ("signal_struct", "ioac.read_bytes"),
    ("signal_struct", "ioac.write_bytes"),
    ("task_struct", "ioac.read_bytes"),
    ("task_struct", "ioac.write_bytes"),
    # The registers a syscall was entered with, x86-64's names (a wait begun
    # before the session: bpf/proctrace.bpf.c, wait_args_from_regs).
    ("pt_regs", "si"),
    ("pt_regs", "dx"),
    ("pt_regs", "r10"),
)

# Enumerators the program indexes with: KENUM_<name> is its value.
ENUM_VALUES: tuple[tuple[str, str], ...] = (("pid_type", "PIDTYPE_SID"),)


# Structs whose size the BPF programs need (to index an array of them): KSIZE_<struct>.
SIZES: tuple[str, ...] = ("k_sigaction", "upid", "percpu_counter")

# BPF helpers the program calls under its own name where the kernel has them
# (bpf/proctrace.bpf.c says why): KHAS_<helper> is 1 or 0.
HELPERS: tuple[str, ...] = (
    "BPF_FUNC_probe_read_user",
    "BPF_FUNC_probe_read_user_str",
    "BPF_FUNC_get_current_task_btf",
    "BPF_FUNC_task_pt_regs",
)


def macro_name(struct: str, member: str) -> str:
    """KOFF_task_struct_pid; a path through embedded structs joins with "_"."""
    return f"KOFF_{struct}_{member.replace('.', '_')}"


def size_macro(struct: str) -> str:
    return f"KSIZE_{struct}"


def helper_macro(helper: str) -> str:
    return f"KHAS_{helper}"


def enum_macro(name: str) -> str:
    return f"KENUM_{name}"


def macro_names() -> set[str]:
    return (
        {macro_name(s, m) for s, m in (*MEMBERS, *OPTIONAL_MEMBERS)}
        | {size_macro(s) for s in SIZES}
        | {helper_macro(h) for h in HELPERS}
        | {enum_macro(name) for _enum, name in ENUM_VALUES}
    )


def offsets_from_btf(btf: Btf) -> dict[str, int]:
    """The prelude's kernel facts: member offsets, struct sizes, and 1 or 0 for
    each helper (whether the kernel's enum bpf_func_id names it)."""
    facts = {macro_name(s, m): btf.offsetof(s, m) for s, m in MEMBERS}
    for struct, member in OPTIONAL_MEMBERS:
        try:
            facts[macro_name(struct, member)] = btf.offsetof(struct, member)
        except BtfError:
            facts[macro_name(struct, member)] = -1
    facts.update({size_macro(s): btf.sizeof(s) for s in SIZES})
    known = btf.enumerators("bpf_func_id")
    facts.update({helper_macro(h): int(h in known) for h in HELPERS})
    for enum, name in ENUM_VALUES:
        values = btf.enumerators(enum)
        if name not in values:
            raise BtfError(f"enum {enum} has no {name}")
        facts[enum_macro(name)] = values[name]
    return facts


def kernel_build(btf_path: Path = VMLINUX_BTF) -> str:
    """Which kernel build this is, as the caches key it: release, build
    string and the size of its BTF (a rebuilt kernel of the same release)."""
    uname = platform.uname()
    try:
        btf_size = btf_path.stat().st_size
    except OSError:
        btf_size = -1
    return f"{uname.release}|{uname.version}|{btf_size}"


def cache_name(data: bytes) -> str:
    """A cache file's name for `data`. Two checksums, not a cryptographic hash:
    the cache is root's alone, so this names, it does not guard; and hashlib
    would map OpenSSL (3 MiB) into every session for one file name."""
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def _build_key(btf_path: Path) -> str:
    return cache_name(f"{kernel_build(btf_path)}|{MEMBERS}|{OPTIONAL_MEMBERS}|{SIZES}|{HELPERS}|{ENUM_VALUES}".encode())


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
