"""A fake machine in a temporary directory for the prerequisite and doctor tests.

`make_host` lays out the files proctrace.kernel.prereqs reads (/proc/self/status, BTF,
mounts, tracefs, /usr/src header trees, kallsyms, config.gz) so each test can
take away one prerequisite without root and without touching the real machine.
"""

from __future__ import annotations

import gzip
import types
from pathlib import Path

from proctrace.kernel.prereqs import TRACEPOINTS, Host

ROOT_STATUS = "Name:\tpython3\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n"
USER_STATUS = "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n"
ALL_TRACEPOINTS = frozenset(tp.name for tp in TRACEPOINTS)
REQUIRED_TRACEPOINTS = frozenset(tp.name for tp in TRACEPOINTS if tp.required)
DEBIAN_RELEASE = "6.1.0-56"


def fake_bcc() -> types.ModuleType:
    module = types.ModuleType("bcc")
    module.BPF = type("BPF", (), {})  # type: ignore[attr-defined]
    module.__version__ = "0.26.0"  # type: ignore[attr-defined]
    module.__file__ = "/usr/lib/python3/dist-packages/bcc/__init__.py"
    return module


def add_debian_headers(
    src: Path, release: str = DEBIAN_RELEASE, flavour: str = "amd64", arch_config: str = "CONFIG_X86_64"
) -> Path:
    """Debian's split layout: linux-headers-<release>-<flavour> includes ...-common's Makefile."""
    common = src / f"linux-headers-{release}-common"
    (common / "include/linux").mkdir(parents=True, exist_ok=True)
    (common / "Makefile").write_text("# kernel Makefile\n")
    build = src / f"linux-headers-{release}-{flavour}"
    (build / "include/generated").mkdir(parents=True)
    (build / "include/generated/autoconf.h").write_text(f"#define {arch_config} 1\n")
    (build / "Makefile").write_text(f"include {common}/Makefile\n")
    return build


def make_host(
    tmp: Path,
    *,
    root: bool = True,
    btf: bool = True,
    tracefs: str = "mounted",  # "mounted", "unmounted" or "unsupported"
    headers: str = "linked",  # "linked", "installed" or "none"
    tracepoints: frozenset[str] = ALL_TRACEPOINTS,
    release: str = "6.18.0-test",
) -> Host:
    tmp.mkdir(parents=True, exist_ok=True)
    status = tmp / "status"
    status.write_text(ROOT_STATUS if root else USER_STATUS)
    cap_last_cap = tmp / "cap_last_cap"
    cap_last_cap.write_text("40\n")
    btf_path = tmp / "vmlinux"
    if btf:
        btf_path.write_bytes(b"\x9f\xeb\x01\x00" + bytes(1000))

    tracing = tmp / "tracing"
    tracing.mkdir()
    filesystems = tmp / "filesystems"
    filesystems.write_text("nodev\tsysfs\nnodev\tproc\n" + ("" if tracefs == "unsupported" else "nodev\ttracefs\n"))
    mounts = tmp / "mounts"
    mounts.write_text(
        "proc /proc proc rw 0 0\n" + (f"nodev {tracing} tracefs rw 0 0\n" if tracefs == "mounted" else "")
    )
    if tracefs == "mounted":
        for name in tracepoints:
            category, event = name.split(":")
            (tracing / "events" / category / event).mkdir(parents=True)

    # What the kernel symbols and config say, for when tracefs cannot be read.
    kallsyms = tmp / "kallsyms"
    symbols = []
    for name in tracepoints:
        category, event = name.split(":")
        if category == "syscalls":
            symbols.append(f"__x64_sys_{event.split('_', 2)[2]}")
        else:
            symbols.append(f"__traceiter_{event}")
    kallsyms.write_text("".join(f"ffffffff81000000 T {s}\n" for s in sorted(set(symbols))))
    kconfig = tmp / "config.gz"
    kconfig.write_bytes(gzip.compress(b"CONFIG_FTRACE_SYSCALLS=y\nCONFIG_BPF_EVENTS=y\n"))

    src = tmp / "src"
    src.mkdir()
    modules = tmp / "modules"
    modules.mkdir()
    if headers in ("linked", "installed"):
        build = add_debian_headers(src)
        if headers == "linked":
            (modules / release).mkdir()
            (modules / release / "build").symlink_to(build)
            (modules / release / "source").symlink_to(src / f"linux-headers-{DEBIAN_RELEASE}-common")

    return Host(
        release=release,
        machine="x86_64",
        proc_status=status,
        cap_last_cap=cap_last_cap,
        btf=btf_path,
        mounts=mounts,
        filesystems=filesystems,
        tracefs=tracing,
        legacy_tracefs=tmp / "debug" / "tracing",
        modules_dir=modules,
        src_dir=src,
        kheaders=tmp / "kheaders.tar.xz",
        kallsyms=kallsyms,
        kconfig=kconfig,
        env={},
    )
