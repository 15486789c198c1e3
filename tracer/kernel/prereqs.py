"""What live tracing needs from the machine, checked one prerequisite at a time.

Each check is a small function returning a `Check`, so `proctrace doctor` can
report them all and `ensure_live_ready` can stop at the first that fails. Two
gaps are closed automatically instead of reported: an unmounted tracefs is
mounted, and a missing /lib/modules/<release>/build is linked to an installed
header tree, because bcc needs both and neither is set up at boot on a fresh VM.

Every path the checks read comes from a `Host`, so tests simulate a machine
without bcc, BTF, tracefs or headers by pointing it at temporary files.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import gzip
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from proctrace.kernel import bpfsys
from proctrace.kernel.bcc import BccUnavailable, load_bcc
from proctrace.kernel.errors import KernelError
from proctrace.kernel.program import (
    BPF_DIR,
    BPF_SOURCES,
    CGROUP_EVENTS,
    CRED_SYSCALLS,
    EXEC_SYSCALLS,
    REQUIRED_FIELDS,
    WAIT_SYSCALLS,
)

HEADERS_INSTALL_FIX = (
    "run `sudo ./scripts/proctrace` once (it installs them), or apt-get install linux-headers-amd64 "
    "(Debian; linux-headers-generic on Ubuntu) or dnf install kernel-devel (Fedora)"
)
SETUP_HINT = "run `sudo ./scripts/proctrace` once, which installs what is missing"
BPF_SOURCES_FIX = (
    "reinstall proctrace (from its checkout: `pip install --force-reinstall .`); "
    "when running from a checkout, restore bpf/ (`git checkout -- bpf`)"
)

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
CAP_NAMES = {CAP_BPF: "CAP_BPF", CAP_PERFMON: "CAP_PERFMON", CAP_SYS_ADMIN: "CAP_SYS_ADMIN"}

RINGBUF_MIN_KERNEL = (5, 8)

# autoconf.h symbol that marks a header tree built for each `uname -m`.
ARCH_CONFIG = {
    "x86_64": "CONFIG_X86_64",
    "aarch64": "CONFIG_ARM64",
    "i686": "CONFIG_X86_32",
    "i386": "CONFIG_X86_32",
    "armv7l": "CONFIG_ARM",
    "ppc64le": "CONFIG_PPC64",
    "s390x": "CONFIG_S390",
    "riscv64": "CONFIG_RISCV",
}


class PrereqError(KernelError):
    """A prerequisite of live tracing is missing; the message says which and how to fix it."""


class Status(enum.Enum):
    OK = "ok"
    AUTO = "auto"  # missing now, but ensure_live_ready fixes it on its own
    WARN = "warn"  # missing, but only an optional feature needs it
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Live tracing can go ahead as far as this check is concerned."""
        return self.status is not Status.FAIL


@dataclass(frozen=True)
class Host:
    """The machine as the checks see it: real paths by default, temporary ones in tests."""

    release: str = field(default_factory=platform.release)
    machine: str = field(default_factory=platform.machine)
    proc_status: Path = Path("/proc/self/status")
    cap_last_cap: Path = Path("/proc/sys/kernel/cap_last_cap")
    btf: Path = Path("/sys/kernel/btf/vmlinux")
    mounts: Path = Path("/proc/self/mounts")
    filesystems: Path = Path("/proc/filesystems")
    tracefs: Path = Path("/sys/kernel/tracing")
    legacy_tracefs: Path = Path("/sys/kernel/debug/tracing")
    modules_dir: Path = Path("/lib/modules")
    src_dir: Path = Path("/usr/src")
    kheaders: Path = Path("/sys/kernel/kheaders.tar.xz")
    kallsyms: Path = Path("/proc/kallsyms")
    kconfig: Path = Path("/proc/config.gz")
    bpf_dir: Path = BPF_DIR  # where proctrace reads the C it compiles
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def build_link(self) -> Path:
        return self.modules_dir / self.release / "build"

    @property
    def source_link(self) -> Path:
        return self.modules_dir / self.release / "source"


@dataclass(frozen=True)
class Tracepoint:
    category: str
    event: str
    required: bool
    needed_for: str

    @property
    def name(self) -> str:
        return f"{self.category}:{self.event}"


def _tracepoints() -> tuple[Tracepoint, ...]:
    core = [
        Tracepoint(c, e, True, "cgroup paths" if (c, e) in CGROUP_EVENTS else "the process lifecycle")
        for c, e in REQUIRED_FIELDS
    ]
    execs = [Tracepoint(c, e, False, "failed execs, and the credentials before an exec") for c, e in EXEC_SYSCALLS]
    waits = [Tracepoint(c, e, False, "reaps (who waited for whom)") for c, e in WAIT_SYSCALLS]
    creds = [Tracepoint(c, e, False, "credential changes after exec (cred events)") for c, e in CRED_SYSCALLS]
    return (*core, *execs, *waits, *creds)


TRACEPOINTS: tuple[Tracepoint, ...] = _tracepoints()


@dataclass(frozen=True)
class HeaderTree:
    build: Path  # has Makefile and include/generated: what bcc calls `build`
    source: Path | None  # Debian's separate -common half, when there is one
    version: tuple[int, ...]


# ---- privileges -------------------------------------------------------------


def _status_field(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


def check_privileges(host: Host) -> Check:
    """Root, or at least the capabilities that loading and attaching BPF needs."""
    try:
        status = host.proc_status.read_text()
    except OSError as exc:
        return Check("privileges", Status.FAIL, f"cannot read {host.proc_status}: {exc.strerror}")
    cap_eff = int(_status_field(status, "CapEff") or "0", 16)
    uid = (_status_field(status, "Uid") or "?").split()[0]
    try:
        last_cap = int(host.cap_last_cap.read_text())
    except (OSError, ValueError):
        last_cap = CAP_BPF
    # Kernels before 5.8 have no CAP_BPF/CAP_PERFMON; CAP_SYS_ADMIN covers BPF there.
    needed = [cap for cap in CAP_NAMES if cap <= last_cap]
    missing = [CAP_NAMES[cap] for cap in needed if not cap_eff >> cap & 1]
    have = ", ".join(CAP_NAMES[cap] for cap in needed)
    who = "root" if uid == "0" else f"uid {uid}"
    if not missing:
        return Check("privileges", Status.OK, f"{who} with {have}")
    return Check(
        "privileges",
        Status.FAIL,
        f"running as {who} without {', '.join(missing)}",
        "run it as root: sudo proctrace ... (or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)",
    )


# ---- bcc --------------------------------------------------------------------


def check_bcc(loader: Callable[[], object] | None = None) -> Check:
    """bcc's Python module imports and is the real one."""
    try:
        bcc = (loader or load_bcc)()
    except BccUnavailable as exc:
        return Check("bcc", Status.FAIL, str(exc))  # the message already says how to fix it
    version = getattr(bcc, "__version__", "unknown version")
    where = Path(getattr(bcc, "__file__", "") or "?").parent
    return Check("bcc", Status.OK, f"{version} at {where}")


# ---- BPF sources ------------------------------------------------------------


def check_bpf_sources(host: Host) -> Check:
    """The C that proctrace compiles at run time is installed and readable as text."""
    problems = []
    for name in BPF_SOURCES:
        path = host.bpf_dir / name
        try:
            path.read_text()
        except OSError as exc:
            problems.append(f"{path} ({exc.strerror or exc})")
        except UnicodeDecodeError:
            problems.append(f"{path} (not text)")
    if problems:
        detail = "the BPF C that proctrace compiles is missing or unreadable: " + ", ".join(problems)
        return Check("BPF sources", Status.FAIL, detail, BPF_SOURCES_FIX)
    return Check("BPF sources", Status.OK, f"{', '.join(BPF_SOURCES)} in {host.bpf_dir}")


# ---- BTF --------------------------------------------------------------------


def check_btf(host: Host) -> Check:
    """Kernel BTF: the only source of the running kernel's true struct layout here."""
    try:
        size = host.btf.stat().st_size
    except OSError:
        return Check(
            "BTF",
            Status.FAIL,
            f"{host.btf} is missing, so struct offsets for this kernel are unknown",
            "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (stock Debian 11+, Ubuntu 20.10+ and "
            "Fedora 31+ kernels are)",
        )
    return Check("BTF", Status.OK, f"{host.btf} ({size / 1e6:.1f} MB)")


# ---- tracefs ----------------------------------------------------------------


def tracefs_mountpoint(host: Host) -> Path | None:
    """Where tracefs is mounted (the modern or the debugfs location), if anywhere."""
    try:
        mounts = host.mounts.read_text()
    except OSError:
        return None
    mounted = {Path(parts[1]) for parts in (line.split() for line in mounts.splitlines()) if len(parts) > 2}
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tracefs" and Path(parts[1]) in (host.tracefs, host.legacy_tracefs):
            return Path(parts[1])
    # Old kernels expose tracefs inside debugfs without a separate mount entry.
    if host.legacy_tracefs.parent in mounted and (host.legacy_tracefs / "events").is_dir():
        return host.legacy_tracefs
    return None


def _kernel_has_tracefs(host: Host) -> bool:
    try:
        return any(line.split()[-1:] == ["tracefs"] for line in host.filesystems.read_text().splitlines())
    except OSError:
        return False


def check_tracefs(host: Host) -> Check:
    """tracefs mounted: bcc attaches tracepoints and reads their formats through it."""
    mountpoint = tracefs_mountpoint(host)
    if mountpoint is not None:
        return Check("tracefs", Status.OK, f"mounted at {mountpoint}")
    if _kernel_has_tracefs(host) and host.tracefs.is_dir():
        return Check("tracefs", Status.AUTO, f"not mounted; proctrace mounts it at {host.tracefs} automatically")
    return Check(
        "tracefs",
        Status.FAIL,
        "this kernel has no tracefs (CONFIG_TRACING is off)",
        "boot a kernel built with CONFIG_TRACING=y and CONFIG_BPF_EVENTS=y (stock distribution kernels are)",
    )


def mount_tracefs(host: Host) -> None:
    """Mount tracefs at host.tracefs; a concurrent mount by someone else is fine."""
    if _mount_with_libc("tracefs", host.tracefs) or tracefs_mountpoint(host) is not None:
        return
    result = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(host.tracefs)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and tracefs_mountpoint(host) is None:
        raise PrereqError(
            f"Could not mount tracefs at {host.tracefs} ({result.stderr.strip() or 'mount failed'}); "
            f"run `mount -t tracefs nodev {host.tracefs}` as root."
        )


def _mount_with_libc(fstype: str, target: Path) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's
    return libc.mount(b"nodev", str(target).encode(), fstype.encode(), 0, None) == 0


# ---- kernel header tree -----------------------------------------------------


def _version_key(name: str) -> tuple[int, ...]:
    """Leading numeric parts of '6.1.0-56-amd64' or '6.5.6-300.fc39.x86_64': (6, 1, 0, 56)."""
    numbers: list[int] = []
    for part in re.split(r"[.\-]", name):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _built_for_arch(build: Path, machine: str) -> bool:
    symbol = ARCH_CONFIG.get(machine)
    try:
        autoconf = (build / "include/generated/autoconf.h").read_text(errors="replace")
    except OSError:
        return False
    return symbol is None or f"#define {symbol} 1" in autoconf


def _source_half(build: Path) -> Path | None:
    """Debian's build half includes its -common half from its Makefile; find that directory."""
    try:
        makefile = (build / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^include\s+(\S+)/Makefile\s*$", makefile, re.MULTILINE)
    if match and Path(match[1]).is_dir():
        return Path(match[1])
    return None


def find_header_trees(host: Host) -> list[HeaderTree]:
    """Installed kernel header trees for this architecture, best first.

    A tree for the running release wins; otherwise the newest. bcc only needs the
    headers to compile, and proctrace takes struct offsets from BTF, so a header
    tree of another version is good enough.
    """
    candidates = [*host.src_dir.glob("linux-headers-*"), *host.src_dir.glob("kernels/*")]
    trees = []
    for build in candidates:
        if build.is_dir() and (build / "Makefile").is_file() and _built_for_arch(build, host.machine):
            version_text = build.name.removeprefix("linux-headers-")
            trees.append(HeaderTree(build, _source_half(build), _version_key(version_text)))

    def rank(tree: HeaderTree) -> tuple[bool, tuple[int, ...], int]:
        exact = tree.build.name in (host.release, f"linux-headers-{host.release}")
        return (exact, tree.version, -len(tree.build.name))  # shorter name: plain flavour over -cloud/-rt

    return sorted(trees, key=rank, reverse=True)


def check_header_tree(host: Host) -> Check:
    """A kernel header tree where bcc looks for one, or one installed that we can link there."""
    if host.build_link.is_dir():
        build = host.build_link.resolve()
        if _source_half(build) is not None and not host.source_link.is_dir():
            # Debian's build half alone lacks include/linux: bcc needs the -common half as `source`.
            return Check(
                "kernel headers",
                Status.AUTO,
                f"{host.source_link} is missing; proctrace links it to {_source_half(build)} automatically",
            )
        return Check("kernel headers", Status.OK, f"{host.build_link} -> {build}")
    env_tree = host.env.get("BCC_KERNEL_SOURCE")
    if env_tree and Path(env_tree).is_dir():
        return Check("kernel headers", Status.OK, f"BCC_KERNEL_SOURCE={env_tree}")
    if host.kheaders.exists():
        return Check("kernel headers", Status.OK, f"the kernel provides them ({host.kheaders})")
    trees = find_header_trees(host)
    if trees:
        return Check(
            "kernel headers",
            Status.AUTO,
            f"{host.build_link} is missing; proctrace links it to {trees[0].build} automatically",
        )
    return Check(
        "kernel headers",
        Status.FAIL,
        f"no kernel header tree: {host.build_link} is missing and none is installed under {host.src_dir}",
        HEADERS_INSTALL_FIX,
    )


def tree_to_link(host: Host) -> HeaderTree | None:
    """The header tree ensure_live_ready would link: the half-linked one, else the best installed."""
    if host.build_link.is_dir():
        build = host.build_link.resolve()
        return HeaderTree(build, _source_half(build), ())
    trees = find_header_trees(host)
    return trees[0] if trees else None


def link_header_tree(host: Host, tree: HeaderTree) -> list[str]:
    """Create the build (and Debian's source) links bcc looks for; returns what was linked."""
    host.build_link.parent.mkdir(parents=True, exist_ok=True)
    linked = []
    for link, target in ((host.build_link, tree.build), (host.source_link, tree.source)):
        if target is None or link.exists():
            continue
        if link.is_symlink():  # dangling: left behind by a removed header package
            link.unlink()
        try:
            link.symlink_to(target)
        except FileExistsError:  # another proctrace linked it a moment ago
            continue
        linked.append(f"{link} -> {target}")
    return linked


# ---- ring buffer ------------------------------------------------------------


def _kernel_version(release: str) -> tuple[int, ...]:
    return _version_key(release.split("-", 1)[0])[:2]


def _probe_ringbuf_map() -> bool:
    """Create (and close) a BPF_MAP_TYPE_RINGBUF map: backported kernels report old versions."""
    try:
        fd = bpfsys.create_map(bpfsys.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, "pt_probe")
    except OSError:  # no such map type here, no BPF, or an unknown machine
        return False
    os.close(fd)
    return True


def check_ring_buffer(host: Host, probe: Callable[[], bool] | None = None) -> Check:
    """BPF ring buffer (5.8+): in-order events; without it proctrace falls back to the perf buffer."""
    version = _kernel_version(host.release)
    shown = ".".join(map(str, version))
    if version >= RINGBUF_MIN_KERNEL:
        return Check("ring buffer", Status.OK, f"supported (kernel {shown})")
    if (probe or _probe_ringbuf_map)():
        return Check("ring buffer", Status.OK, f"supported (backported to kernel {shown})")
    return Check(
        "ring buffer",
        Status.WARN,
        f"kernel {shown} has none; proctrace uses the perf buffer, whose events arrive out of order",
        "upgrade to a kernel >= 5.8 for ordered, cheaper event delivery",
    )


# ---- tracepoints ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _kernel_symbols(kallsyms: Path) -> frozenset[str]:
    try:
        with kallsyms.open() as f:
            return frozenset(line.split()[2] for line in f if line.count(" ") >= 2)
    except OSError:
        return frozenset()


def _kernel_config(kconfig: Path) -> str:
    try:
        return gzip.decompress(kconfig.read_bytes()).decode(errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""


def _tracepoint_in_kernel(host: Host, tp: Tracepoint) -> bool | None:
    """Without tracefs, ask kallsyms (and the config for syscalls); None when neither answers."""
    symbols = _kernel_symbols(host.kallsyms)
    if not symbols:
        return None
    if tp.category != "syscalls":
        return bool(
            {f"__traceiter_{tp.event}", f"__tracepoint_{tp.event}", f"trace_event_raw_event_{tp.event}"} & symbols
        )
    config = _kernel_config(host.kconfig)
    if config and "CONFIG_FTRACE_SYSCALLS=y" not in config:
        return False
    syscall = tp.event.split("_", 2)[2]  # sys_enter_execve -> execve
    suffix = f"sys_{syscall}"
    return any(s == suffix or (s.startswith("__") and s.endswith("_" + suffix)) for s in symbols)


def check_tracepoint(host: Host, tp: Tracepoint) -> Check:
    """One tracepoint exists, read from tracefs when mounted (else from kernel symbols)."""
    name = f"tracepoint {tp.name}"
    mountpoint = tracefs_mountpoint(host)
    events = mountpoint / "events" if mountpoint else None
    if events is not None and os.access(events, os.R_OK | os.X_OK):
        present: bool | None = (events / tp.category / tp.event).is_dir()
        where = ""
    else:
        present = _tracepoint_in_kernel(host, tp)
        why = "not mounted" if mountpoint is None else "not readable"
        where = f" (in kernel symbols; tracefs {why})"
    if present:
        return Check(name, Status.OK, "present" + where)
    if present is None:
        return Check(name, Status.AUTO, "cannot be listed until tracefs is mounted (proctrace mounts it)")
    if tp.required:
        return Check(
            name,
            Status.FAIL,
            f"this kernel has no {tp.name} tracepoint; proctrace needs it for {tp.needed_for}",
            "use a kernel >= 5.4 built with CONFIG_TRACING=y (stock Debian/Ubuntu/Fedora kernels are)",
        )
    return Check(
        name,
        Status.WARN,
        f"this kernel has no {tp.name} tracepoint (optional): proctrace will not show {tp.needed_for}",
        "use a kernel built with CONFIG_FTRACE_SYSCALLS=y (stock Debian/Ubuntu/Fedora kernels are)",
    )


# ---- all together -----------------------------------------------------------


def all_checks(host: Host | None = None, bcc_loader: Callable[[], object] | None = None) -> list[Check]:
    """Every prerequisite, in the order doctor prints them. Reads only; changes nothing."""
    host = host or Host()
    checks = [
        check_privileges(host),
        check_bcc(bcc_loader),
        check_bpf_sources(host),
        check_header_tree(host),
        check_btf(host),
        check_tracefs(host),
        check_ring_buffer(host),
    ]
    checks += [check_tracepoint(host, tp) for tp in TRACEPOINTS]
    return checks


def _require(check: Check) -> Check:
    """Pass a check through, or raise its detail and fix as one message."""
    if check.ok:
        return check
    sentence = check.detail.rstrip(".") + "."  # not capitalised: "bcc", "uid 1000" must stay as they are
    raise PrereqError(sentence + (f" Fix: {check.fix}." if check.fix else ""))


def ensure_live_ready(
    host: Host | None = None,
    bcc_loader: Callable[[], object] | None = None,
    log: TextIO | None = None,
) -> None:
    """Make the machine ready to load proctrace's BPF program, or raise PrereqError.

    Called by the CLI before loading BPF. Mounts tracefs and links a kernel header
    tree when they are missing; everything else it can only report. bcc is
    checked only with a `bcc_loader`: a live session never imports it, and its
    loader process (tracer/kernel/loader.py) says the same as check_bcc when
    bcc is missing.
    """
    host = host or Host()
    log = log or sys.stderr
    _require(check_privileges(host))
    _require(check_btf(host))
    if bcc_loader is not None:
        _require(check_bcc(bcc_loader))
    _require(check_bpf_sources(host))
    if _require(check_tracefs(host)).status is Status.AUTO:
        mount_tracefs(host)
    if _require(check_header_tree(host)).status is Status.AUTO:
        tree = tree_to_link(host)
        linked = link_header_tree(host, tree) if tree else []
        if linked:
            print(
                f"proctrace: linked {' and '.join(linked)} so bcc finds kernel headers to compile against "
                f"(kernel {host.release}; struct offsets come from its BTF, not from these headers)",
                file=log,
            )
    for tp in TRACEPOINTS:
        if tp.required:
            _require(check_tracepoint(host, tp))


def main() -> int:
    """`python -m proctrace.kernel.prereqs`: prepare the machine (used by scripts/test before live tests)."""
    try:
        ensure_live_ready()
    except PrereqError as exc:
        print(f"proctrace: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
