"""Assembles the BPF C program for the running kernel.

The C in bpf/ never names a struct member or a tracepoint field offset directly;
this module defines them as macros from BTF and the tracefs format files, then
appends the wire header and the program. Pure: it takes the facts as arguments,
so the text can be built and checked without root.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

from proctrace.kernel.tracepoints import FormatError, TracepointFormat

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Run from a checkout (an editable install included) the package is the folder
# tracer/ and the C sits beside it in bpf/; an installed wheel ships the C inside
# the package, as the data package proctrace.bpf (pyproject.toml). Chosen by
# layout, not by which folder exists, so that when the C is missing the doctor
# names the path where it belongs.
BPF_DIR = _PACKAGE_DIR.parent / "bpf" if _PACKAGE_DIR.name == "tracer" else _PACKAGE_DIR / "bpf"
# The files build_source appends to the generated prelude, in this order.
BPF_SOURCES = ("event.h", "proctrace.bpf.c")

# Tracepoint fields the program reads, per (category, event). Fields marked
# optional are used where the kernel has them.
CGROUP_MKDIR = ("cgroup", "cgroup_mkdir")
REQUIRED_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("task", "task_newtask"): ("clone_flags",),
    ("sched", "sched_process_fork"): ("child_pid",),
    ("sched", "sched_process_exec"): ("filename", "old_pid"),
    ("sched", "sched_process_exit"): (),
    # A raw tracepoint (for the target task among its arguments): no field is read
    # from its format, but it must exist.
    ("signal", "signal_generate"): (),
    ("signal", "signal_deliver"): ("sig", "code", "sa_handler"),
    ("sched", "sched_process_free"): (),
    ("cgroup", "cgroup_mkdir"): (),
    ("cgroup", "cgroup_rmdir"): (),
    ("cgroup", "cgroup_rename"): (),
}
OPTIONAL_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sched", "sched_process_exit"): ("group_dead",),
}
# Syscall tracepoints, in groups that are used all together or not at all.
EXEC_SYSCALLS: dict[tuple[str, str], tuple[str, ...]] = {
    ("syscalls", "sys_enter_execve"): ("filename", "argv"),
    ("syscalls", "sys_enter_execveat"): ("filename", "argv"),
    ("syscalls", "sys_exit_execve"): ("ret",),
    ("syscalls", "sys_exit_execveat"): ("ret",),
}
WAIT_SYSCALLS: dict[tuple[str, str], tuple[str, ...]] = {
    ("syscalls", "sys_enter_wait4"): ("stat_addr", "options"),
    ("syscalls", "sys_enter_waitid"): ("infop", "options"),
    ("syscalls", "sys_exit_wait4"): ("__syscall_nr", "ret"),
    ("syscalls", "sys_exit_waitid"): ("__syscall_nr", "ret"),
}
# wait4's and waitid's numbers where proctrace knows the registers that carry
# their arguments (arch/x86/entry/syscalls/syscall_64.tbl): a wait begun
# before the session saved nothing at its entry, and its exit reads them from
# the registers it was entered with (bpf/proctrace.bpf.c, wait_args_from_regs).
WAIT_SYSCALL_NUMBERS: dict[str, tuple[int, int]] = {"x86_64": (61, 247)}
# The calls that change a task's credentials (cred events). Their entries read
# no field; every exit reads its number and result.
CRED_SYSCALL_NAMES = (
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setfsuid", "setfsgid", "setgroups", "capset",
)  # fmt: skip
# Their numbers, which a cred event carries, on the architectures proctrace runs on
# (arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h for arm64).
CRED_SYSCALL_NUMBERS: dict[str, dict[int, str]] = {
    "x86_64": {105: "setuid", 106: "setgid", 113: "setreuid", 114: "setregid", 116: "setgroups",
               117: "setresuid", 119: "setresgid", 122: "setfsuid", 123: "setfsgid", 126: "capset"},
    "aarch64": {146: "setuid", 144: "setgid", 145: "setreuid", 143: "setregid", 159: "setgroups",
                147: "setresuid", 149: "setresgid", 151: "setfsuid", 152: "setfsgid", 91: "capset"},
}  # fmt: skip
CRED_SYSCALL_ENTRIES: tuple[tuple[str, str], ...] = tuple(("syscalls", f"sys_enter_{n}") for n in CRED_SYSCALL_NAMES)
CRED_SYSCALL_EXITS: tuple[tuple[str, str], ...] = tuple(("syscalls", f"sys_exit_{n}") for n in CRED_SYSCALL_NAMES)
CRED_SYSCALLS: dict[tuple[str, str], tuple[str, ...]] = {
    **dict.fromkeys(CRED_SYSCALL_ENTRIES, ()),
    **dict.fromkeys(CRED_SYSCALL_EXITS, ("__syscall_nr", "ret")),
}
# The OOM killer's choice of a victim, where the kernel has the tracepoint.
OOM_EVENTS: dict[tuple[str, str], tuple[str, ...]] = {("oom", "mark_victim"): ("pid",)}
# cgroup_mkdir, _rmdir and _rename: one layout, read at cgroup_mkdir's offsets.
CGROUP_EVENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cgroup", "cgroup_mkdir"): ("root", "id", "path"),
    ("cgroup", "cgroup_rmdir"): ("root", "id", "path"),
    ("cgroup", "cgroup_rename"): ("root", "id", "path"),
}

# Programs that serve several tracepoints, attached by name (tracer/kernel/probe.py)
# rather than by bcc's TRACEPOINT_PROBE convention: (program, its tracepoints,
# the group whose presence compiles it in). Its fields are read at the first
# tracepoint's offsets.
SHARED_PROGRAMS: tuple[tuple[str, tuple[tuple[str, str], ...], dict[tuple[str, str], tuple[str, ...]]], ...] = (
    ("exec_syscall_exit", (("syscalls", "sys_exit_execve"), ("syscalls", "sys_exit_execveat")), EXEC_SYSCALLS),
    ("wait_syscall_exit", (("syscalls", "sys_exit_wait4"), ("syscalls", "sys_exit_waitid")), WAIT_SYSCALLS),
    ("cred_syscall_enter", CRED_SYSCALL_ENTRIES, CRED_SYSCALLS),
    ("cred_syscall_exit", CRED_SYSCALL_EXITS, CRED_SYSCALLS),
)
# Groups of tracepoints whose programs are compiled in only where the kernel has them all.
OPTIONAL_GROUPS: tuple[tuple[str, dict[tuple[str, str], tuple[str, ...]]], ...] = (
    ("PT_HAVE_EXEC_SYSCALLS", EXEC_SYSCALLS),
    ("PT_HAVE_WAIT_SYSCALLS", WAIT_SYSCALLS),
    ("PT_HAVE_CRED_SYSCALLS", CRED_SYSCALLS),
    ("PT_HAVE_OOM", OOM_EVENTS),
)

# Programs attached as raw tracepoints, by bcc from their RAW_TRACEPOINT_PROBE name.
RAW_TRACEPOINTS: tuple[tuple[str, str], ...] = (("signal", "signal_generate"), ("sched", "sched_process_free"))

ARGV_MAX_DEFAULT = 4096
SIGNAL_RATE_DEFAULT = 1000  # signals a second of one sender, target and signal before the rest are counted
ARGV_MAX_LIMIT = 28 * 1024  # a per-CPU map value holds at most 32 KiB
ENV_MAX_DEFAULT = 8192  # bytes of environment an exec carries with --env
# The per-task notes' arrays (bpf/proctrace.bpf.c, PT_TASK_SLOTS): a slot for
# each id up to pid_max, where pid_max is at most this; hash maps above it.
TASK_SLOTS_MAX = 65536
PID_MAX_FILE = Path("/proc/sys/kernel/pid_max")
PID_MAX_DEFAULT = 32768  # the kernel's default where the file cannot be read


def task_slots(pid_max: int) -> int:
    """The per-task arrays' size: the power of two at or above `pid_max`, so
    that every task id has a slot of its own; 0 (hash maps) when that would
    be more than TASK_SLOTS_MAX."""
    if pid_max > TASK_SLOTS_MAX:
        return 0
    slots = 1024
    while slots < pid_max:
        slots *= 2
    return slots


def read_pid_max(path: Path = PID_MAX_FILE) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return PID_MAX_DEFAULT


@dataclass(frozen=True)
class ProgramOptions:
    ring_buffer: bool = True
    buffer_pages: int = 1024  # the lifecycle events' buffer. Ring buffer: total; perf buffer: per CPU
    signal_buffer_pages: int = 1024  # the signals' buffer, likewise
    signal_rate: int = SIGNAL_RATE_DEFAULT  # per sender, target and signal a second; 0: no limit
    all_signals: bool = False  # send every signal: no ptrace-stop folding, no rate limit
    argv_max: int = ARGV_MAX_DEFAULT
    follow: bool = False  # only tasks in the `followed` map (see tracer/model/filters.py)
    follow_children: bool = False  # what a followed task forks is followed too
    match_comms: bool = False  # an exec into a name in `match_comms` is followed
    follow_max: int = 65536
    env: bool = False  # exec events carry the new image's environment (--env)
    env_max: int = ENV_MAX_DEFAULT  # ... up to this many bytes; argv_max + env_max <= ARGV_MAX_LIMIT
    # Only tasks in the cgroups of `selected_cgroups` and their descendants, and
    # in cgroups made later whose name matches `cgroup_names`/`container_prefixes`
    # (--cgroup, --unit, --container; tracer/model/cgroups.py has the rules).
    cgroup_filter: bool = False
    # See task_slots(): a power of two, or 0. Read from this machine's pid_max
    # when the options are made, so that no program gets arrays ids would share.
    task_slots: int = field(default_factory=lambda: task_slots(read_pid_max()))


def field_macros(fmt: TracepointFormat, names: tuple[str, ...], required: bool = True) -> list[str]:
    lines = []
    for name in names:
        if name not in fmt.fields:
            if required:
                raise FormatError(f"tracepoint {fmt.category}:{fmt.event} has no field {name!r}")
            continue
        f = fmt.fields[name]
        lines.append(f"#define TP_{fmt.event}__{name} {f.offset}")
        lines.append(f"#define TP_{fmt.event}__{name}_DATALOC {int(f.data_loc)}")
    return lines


def build_source(
    offsets: dict[str, int],
    formats: dict[tuple[str, str], TracepointFormat],
    options: ProgramOptions,
) -> str:
    """The complete C text. `formats` holds every tracepoint the kernel has that
    we use; missing syscall tracepoints switch their hooks off."""
    if not 64 <= options.argv_max <= ARGV_MAX_LIMIT:
        raise ValueError(f"argv limit must be between 64 and {ARGV_MAX_LIMIT} bytes")
    if options.env and not 64 <= options.env_max <= ARGV_MAX_LIMIT - options.argv_max:
        raise ValueError(
            f"environment limit must be between 64 and {ARGV_MAX_LIMIT - options.argv_max} bytes "
            f"(with an argv limit of {options.argv_max}: together at most {ARGV_MAX_LIMIT})"
        )
    lines = ["/* Generated for the running kernel by tracer/kernel/program.py */"]
    lines += [f"#define {name} {off}" for name, off in sorted(offsets.items())]
    for key, names in REQUIRED_FIELDS.items():
        if key not in formats:
            raise FormatError(f"tracepoint {key[0]}:{key[1]} does not exist on this kernel")
        lines += field_macros(formats[key], names)
    for key, names in OPTIONAL_FIELDS.items():
        lines += field_macros(formats[key], names, required=False)
    check_shared_layouts(formats)
    for switch, group in OPTIONAL_GROUPS:
        if _enabled(group, formats):
            lines.append(f"#define {switch} 1")
            for key, names in group.items():
                lines += field_macros(formats[key], names)
    lines += field_macros(formats[CGROUP_MKDIR], CGROUP_EVENTS[CGROUP_MKDIR])
    wait_numbers = WAIT_SYSCALL_NUMBERS.get(platform.machine())
    if wait_numbers is not None:
        lines += [f"#define PT_NR_WAIT4 {wait_numbers[0]}", f"#define PT_NR_WAITID {wait_numbers[1]}"]
    if options.ring_buffer:
        lines.append("#define PT_RINGBUF 1")
    lines.append(f"#define PT_BUFFER_PAGES {options.buffer_pages}")
    lines.append(f"#define PT_SIGNAL_BUFFER_PAGES {options.signal_buffer_pages}")
    lines.append(f"#define PT_SIGNAL_RATE {0 if options.all_signals else options.signal_rate}")
    if options.all_signals:
        lines.append("#define PT_ALL_SIGNALS 1")
    lines.append(f"#define PT_ARGV_MAX {options.argv_max}")
    if options.env:
        lines.append("#define PT_ENV 1")
        lines.append(f"#define PT_ENV_MAX {options.env_max}")
    lines.append(f"#define PT_FOLLOW_MAX {options.follow_max}")
    slots = options.task_slots
    if slots and (slots & (slots - 1) or not 0 < slots <= TASK_SLOTS_MAX):
        raise ValueError(f"task slots must be 0 or a power of two up to {TASK_SLOTS_MAX}, not {slots}")
    lines.append(f"#define PT_TASK_SLOTS {options.task_slots}")
    if options.cgroup_filter:
        lines.append("#define PT_CGROUP_FILTER 1")
    if options.follow:
        lines.append("#define PT_FOLLOW 1")
        if options.follow_children:
            lines.append("#define PT_FOLLOW_CHILDREN 1")
        if options.match_comms:
            lines.append("#define PT_MATCH_COMMS 1")
    lines += [(BPF_DIR / name).read_text() for name in BPF_SOURCES]
    return "\n".join(lines) + "\n"


def _enabled(group: dict[tuple[str, str], tuple[str, ...]], formats: dict[tuple[str, str], TracepointFormat]) -> bool:
    return all(key in formats for key in group)


def check_shared_layouts(formats: dict[tuple[str, str], TracepointFormat]) -> None:
    """A shared program reads its fields at the first tracepoint's offsets:
    every other tracepoint it serves must have them at the same place."""
    for _program, keys, group in (*SHARED_PROGRAMS, ("cgroup_event", tuple(CGROUP_EVENTS), CGROUP_EVENTS)):
        if not _enabled(group, formats):
            continue
        first = keys[0]
        for key in keys[1:]:
            for name in group[first]:
                here, there = formats[first].fields[name], formats[key].fields[name]
                if (here.offset, here.data_loc) != (there.offset, there.data_loc):
                    raise FormatError(
                        f"tracepoints {first[1]} and {key[1]} lay out {name!r} differently "
                        f"(offset {here.offset} and {there.offset}); one program cannot serve both"
                    )


def shared_attachments(formats: dict[tuple[str, str], TracepointFormat]) -> list[tuple[str, str]]:
    """("category:event", program) for each tracepoint a shared program serves on this kernel."""
    return [
        (f"{category}:{event}", program)
        for program, keys, group in SHARED_PROGRAMS
        if _enabled(group, formats)
        for category, event in keys
    ]


def tracepoints_used() -> list[tuple[str, str]]:
    return [*REQUIRED_FIELDS, *EXEC_SYSCALLS, *WAIT_SYSCALLS, *CRED_SYSCALLS, *OOM_EVENTS]
