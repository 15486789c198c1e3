"""tracer/kernel/program.py: the prelude it writes for a kernel, and agreement between the
names the C program uses and the names the Python side defines."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from proctrace.kernel import program as bpf_source
from proctrace.kernel.layout import HELPERS, MEMBERS, OPTIONAL_MEMBERS, helper_macro, macro_name
from proctrace.kernel.program import (
    ARGV_MAX_LIMIT,
    CGROUP_EVENTS,
    CRED_SYSCALL_ENTRIES,
    CRED_SYSCALL_EXITS,
    CRED_SYSCALL_NAMES,
    CRED_SYSCALLS,
    EXEC_SYSCALLS,
    OOM_EVENTS,
    OPTIONAL_FIELDS,
    RAW_TRACEPOINTS,
    REQUIRED_FIELDS,
    SHARED_PROGRAMS,
    WAIT_SYSCALLS,
    ProgramOptions,
    build_source,
    field_macros,
    shared_attachments,
    tracepoints_used,
)
from proctrace.kernel.tracepoints import FormatError, TracepointFormat, parse_format

FORMATS = Path(__file__).parent / "data" / "formats"
PROGRAM = bpf_source.BPF_DIR / "proctrace.bpf.c"
ALL_KEYS = [*REQUIRED_FIELDS, *EXEC_SYSCALLS, *WAIT_SYSCALLS, *CRED_SYSCALLS, *OOM_EVENTS]
# Distinct, recognisable values: a swapped pair would show.
FAKE_OFFSETS = {
    **{macro_name(s, m): 1000 + 8 * i for i, (s, m) in enumerate(MEMBERS)},
    **{helper_macro(h): 1 for h in HELPERS},
}


def formats(kernel: str, drop: tuple[tuple[str, str], ...] = ()) -> dict[tuple[str, str], TracepointFormat]:
    out = {}
    for category, event in ALL_KEYS:
        if (category, event) in drop:
            continue
        text = (FORMATS / kernel / f"{event}.format").read_text()
        out[(category, event)] = parse_format(category, event, text)
    return out


def prelude(source: str) -> str:
    """The generated part: everything before bpf/event.h."""
    return source[: source.index("#ifndef PROCTRACE_EVENT_H")]


def defines(source: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.*)$", prelude(source), re.M))


def build(kernel: str = "6.18", drop: tuple[tuple[str, str], ...] = (), **options) -> dict[str, str]:
    return defines(build_source(FAKE_OFFSETS, formats(kernel, drop), ProgramOptions(**options)))


def test_every_kernel_offset_is_defined_with_its_value() -> None:
    d = build()
    for name, off in FAKE_OFFSETS.items():
        assert d[name] == str(off)


def test_group_dead_is_defined_only_where_the_kernel_has_it() -> None:
    assert build("6.18")["TP_sched_process_exit__group_dead"] == "32"
    assert "TP_sched_process_exit__group_dead" not in build("5.15")
    assert "TP_sched_process_exit__group_dead_DATALOC" not in build("5.15")


def test_fork_comm_dataloc_is_1_on_new_kernels_and_0_on_old() -> None:
    new = formats("6.18")[("sched", "sched_process_fork")]
    old = formats("5.15")[("sched", "sched_process_fork")]
    names = ("parent_comm", "child_comm")
    assert field_macros(new, names) == [
        "#define TP_sched_process_fork__parent_comm 8",
        "#define TP_sched_process_fork__parent_comm_DATALOC 1",
        "#define TP_sched_process_fork__child_comm 16",
        "#define TP_sched_process_fork__child_comm_DATALOC 1",
    ]
    assert field_macros(old, names) == [
        "#define TP_sched_process_fork__parent_comm 8",
        "#define TP_sched_process_fork__parent_comm_DATALOC 0",
        "#define TP_sched_process_fork__child_comm 28",
        "#define TP_sched_process_fork__child_comm_DATALOC 0",
    ]


def test_signal_generate_is_a_raw_tracepoint_that_reads_no_format_field() -> None:
    """Its target task (whose disposition says whether a signal may kill) is
    among the raw tracepoint's arguments, not in the tracefs format: every
    value comes from the task through BTF offsets, none from the format."""
    assert REQUIRED_FIELDS[("signal", "signal_generate")] == ()
    assert not any(name.startswith("TP_signal_generate__") for name in build("6.18"))
    assert ("signal", "signal_generate") in RAW_TRACEPOINTS
    assert re.search(r"RAW_TRACEPOINT_PROBE\(signal_generate\)", program_code())


def test_sched_process_free_is_a_raw_tracepoint_compiled_only_with_the_wait_syscalls() -> None:
    """A freed leader that no wait() collected is a kernel reap: without the
    wait syscalls' reaps to tell them apart, every free would look like one."""
    assert REQUIRED_FIELDS[("sched", "sched_process_free")] == ()
    assert ("sched", "sched_process_free") in RAW_TRACEPOINTS
    text = PROGRAM.read_text()
    probe = text.index("RAW_TRACEPOINT_PROBE(sched_process_free)")
    guard = text.rindex("#ifdef PT_HAVE_WAIT_SYSCALLS", 0, probe)
    assert "#endif" not in text[guard:probe]


def test_exec_filename_is_a_data_loc_on_both_kernels() -> None:
    for kernel in ("6.18", "5.15"):
        d = build(kernel)
        assert (d["TP_sched_process_exec__filename"], d["TP_sched_process_exec__filename_DATALOC"]) == ("8", "1")


def test_tracepoint_offsets_come_from_the_format_files() -> None:
    new, old = build("6.18"), build("5.15")
    assert new["TP_sched_process_fork__child_pid"] == "20"
    assert old["TP_sched_process_fork__child_pid"] == "44"
    assert new["TP_task_newtask__clone_flags"] == "32"
    assert new["TP_signal_deliver__sa_handler"] == "24"
    assert new["TP_sys_enter_execveat__argv"] == "32"
    assert new["TP_sys_enter_waitid__infop"] == "32"


def test_exec_syscall_hooks_are_on_when_all_four_tracepoints_exist() -> None:
    d = build()
    assert d["PT_HAVE_EXEC_SYSCALLS"] == "1"
    assert d["TP_sys_exit_execveat__ret"] == "16"


@pytest.mark.parametrize("missing", list(EXEC_SYSCALLS), ids=lambda k: k[1])
def test_exec_syscall_hooks_are_off_when_any_tracepoint_is_missing(missing: tuple[str, str]) -> None:
    d = build(drop=(missing,))
    assert "PT_HAVE_EXEC_SYSCALLS" not in d
    assert not [name for name in d if re.match(r"TP_sys_(enter|exit)_execve", name)]
    assert d["PT_HAVE_WAIT_SYSCALLS"] == "1"  # the other group does not depend on this one


@pytest.mark.parametrize("missing", list(WAIT_SYSCALLS), ids=lambda k: k[1])
def test_wait_syscall_hooks_are_off_when_any_tracepoint_is_missing(missing: tuple[str, str]) -> None:
    d = build(drop=(missing,))
    assert "PT_HAVE_WAIT_SYSCALLS" not in d
    assert not [name for name in d if re.match(r"TP_sys_(enter|exit)_wait", name)]
    assert d["PT_HAVE_EXEC_SYSCALLS"] == "1"


def test_ring_buffer_option_switches_pt_ringbuf() -> None:
    assert build(ring_buffer=True)["PT_RINGBUF"] == "1"
    assert "PT_RINGBUF" not in build(ring_buffer=False)


def test_buffer_pages_and_argv_max_are_passed_through() -> None:
    d = build(buffer_pages=64, argv_max=8192)
    assert (d["PT_BUFFER_PAGES"], d["PT_ARGV_MAX"]) == ("64", "8192")


def test_follow_mode_defines_follow_and_its_map_size() -> None:
    d = build(follow=True, follow_max=4096)
    assert (d["PT_FOLLOW"], d["PT_FOLLOW_MAX"]) == ("1", "4096")
    assert "PT_FOLLOW" not in build(follow=False)


@pytest.mark.parametrize(
    ("pid_max", "slots"),
    [(32768, 32768), (32769, 65536), (65536, 65536), (300, 1024), (1024, 1024), (40000, 65536)],
)
def test_the_per_task_arrays_give_each_id_up_to_pid_max_a_slot_of_its_own(pid_max: int, slots: int) -> None:
    assert bpf_source.task_slots(pid_max) == slots
    assert build(task_slots=slots)["PT_TASK_SLOTS"] == str(slots)


@pytest.mark.parametrize("pid_max", [65537, 4194304])
def test_a_pid_max_too_large_for_a_slot_each_keeps_the_notes_in_hash_maps(pid_max: int) -> None:
    assert bpf_source.task_slots(pid_max) == 0
    assert build(task_slots=0)["PT_TASK_SLOTS"] == "0"


@pytest.mark.parametrize("slots", [-1, 3, 1000, bpf_source.TASK_SLOTS_MAX * 2])
def test_a_slot_count_that_is_no_power_of_two_within_the_cap_is_refused(slots: int) -> None:
    with pytest.raises(ValueError, match="task slots"):
        build(task_slots=slots)


def test_pid_max_is_read_from_proc_and_defaults_to_the_kernels_default(tmp_path: Path) -> None:
    (tmp_path / "pid_max").write_text("4194304\n")
    assert bpf_source.read_pid_max(tmp_path / "pid_max") == 4194304
    assert bpf_source.read_pid_max(tmp_path / "missing") == bpf_source.PID_MAX_DEFAULT
    (tmp_path / "bad").write_text("many\n")
    assert bpf_source.read_pid_max(tmp_path / "bad") == bpf_source.PID_MAX_DEFAULT


def test_with_a_slot_for_each_id_every_per_task_note_is_an_array_slot() -> None:
    """The hot path's notes are no hash maps, whose update and delete cost
    ~250 ns each (tests/live/test_task_slots_live.py checks that a reader
    takes only its own id's note, and loads the hash maps' version too)."""
    text = PROGRAM.read_text()
    slots = text[text.index("#if PT_TASK_SLOTS\nBPF_ARRAY") : text.index("#else\nBPF_HASH(saved_args_by_tid")]
    for name in ("saved_args_by_tid", "clone_flags_by_tid", "waited_for"):
        assert re.search(rf"BPF_ARRAY\({name}, [^,]+, PT_TASK_SLOTS\)", slots), name


@pytest.mark.parametrize("argv_max", [0, 63, ARGV_MAX_LIMIT + 1, -1])
def test_argv_max_out_of_range_raises_value_error(argv_max: int) -> None:
    with pytest.raises(ValueError, match="argv limit"):
        build(argv_max=argv_max)


@pytest.mark.parametrize("argv_max", [64, ARGV_MAX_LIMIT])
def test_argv_max_at_the_limits_is_accepted(argv_max: int) -> None:
    assert build(argv_max=argv_max)["PT_ARGV_MAX"] == str(argv_max)


@pytest.mark.parametrize("missing", list(REQUIRED_FIELDS), ids=lambda k: k[1])
def test_missing_required_tracepoint_raises_naming_it(missing: tuple[str, str]) -> None:
    with pytest.raises(FormatError, match=f"{missing[0]}:{missing[1]} does not exist"):
        build(drop=(missing,))


def test_missing_required_field_raises_naming_it() -> None:
    fmts = formats("6.18")
    key = ("sched", "sched_process_exec")
    fields = {k: v for k, v in fmts[key].fields.items() if k != "old_pid"}
    fmts[key] = replace(fmts[key], fields=fields)
    with pytest.raises(FormatError, match=r"sched:sched_process_exec has no field 'old_pid'"):
        build_source(FAKE_OFFSETS, fmts, ProgramOptions())


def test_missing_field_of_a_present_syscall_group_raises() -> None:
    # A group is used whole: a tracepoint that exists without its field is an error, not "off".
    fmts = formats("6.18")
    key = ("syscalls", "sys_enter_wait4")
    fmts[key] = replace(fmts[key], fields={k: v for k, v in fmts[key].fields.items() if k != "options"})
    with pytest.raises(FormatError, match="options"):
        build_source(FAKE_OFFSETS, fmts, ProgramOptions())


def test_source_is_prelude_then_wire_header_then_program() -> None:
    src = build_source(FAKE_OFFSETS, formats("6.18"), ProgramOptions())
    header = (bpf_source.BPF_DIR / "event.h").read_text()
    program = PROGRAM.read_text()
    assert src.index(header) < src.index(program)
    assert src.index("#define PT_ARGV_MAX") < src.index(header)
    assert src.rstrip().endswith(program.rstrip())


def test_tracepoints_used_lists_every_hooked_tracepoint_once() -> None:
    used = tracepoints_used()
    assert len(used) == len(set(used))
    assert set(used) == (
        set(REQUIRED_FIELDS) | set(EXEC_SYSCALLS) | set(WAIT_SYSCALLS) | set(CRED_SYSCALLS) | set(OOM_EVENTS)
    )


# --- C and Python agree -------------------------------------------------------------


def program_code() -> str:
    """The C program without comments and without its own #define bodies, which name
    macro parameters (ev, f) rather than real events and fields."""
    text = PROGRAM.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^#define(?:[^\n]*\\\n)*[^\n]*$", " ", text, flags=re.M)
    return text


def tp_uses(code: str) -> set[tuple[str, str]]:
    """(event, field) for every TP_FIELD/TP_STR use and every TP_<event>__<field> token."""
    uses = set(re.findall(r"\bTP_FIELD\(\s*\w+\s*,\s*[^,()]+?\s*,\s*(\w+)\s*,\s*(\w+)\s*\)", code))
    uses |= set(re.findall(r"\bTP_STR\(\s*\w+\s*,\s*(\w+)\s*,\s*(\w+)\s*\)", code))
    for event, field in re.findall(r"\bTP_([a-z0-9_]+?)__([a-z0-9_]+)\b", code):
        uses.add((event, field.removesuffix("_DATALOC")))
    return uses


def test_program_parser_sees_the_uses_it_must_check() -> None:
    # Guards the regexes below: if they matched nothing, the agreement tests would pass vacuously.
    code = program_code()
    assert ("task_newtask", "clone_flags") in tp_uses(code)
    assert ("sched_process_exec", "filename") in tp_uses(code)  # through TP_STR
    assert ("sched_process_exit", "group_dead") in tp_uses(code)  # through #ifdef
    assert "KOFF_task_struct_real_parent" in re.findall(r"\bKOFF_\w+", code)


def test_every_koff_macro_in_the_program_is_a_member_kernel_layout_reads() -> None:
    used = set(re.findall(r"\bKOFF_\w+", program_code()))
    defined = {macro_name(s, m) for s, m in (*MEMBERS, *OPTIONAL_MEMBERS)}
    assert used - defined == set()


def test_every_member_kernel_layout_reads_is_used_by_the_program() -> None:
    # An unused member still has to exist in the kernel's BTF, or startup fails for nothing.
    used = set(re.findall(r"\bKOFF_\w+", program_code()))
    assert {macro_name(s, m) for s, m in MEMBERS} - used == set()


def test_the_helpers_the_program_asks_about_are_the_ones_kernel_layout_checks() -> None:
    assert set(re.findall(r"\bKHAS_\w+", PROGRAM.read_text())) == {helper_macro(h) for h in HELPERS}


def test_the_program_never_names_the_user_read_helpers_that_cost_bcc_a_kallsyms_scan() -> None:
    """bcc reads all of /proc/kallsyms for each compile that calls them by name (~150 ms)."""
    assert re.findall(r"\bbpf_probe_read_user(?:_str)?\b", program_code()) == []


def test_every_tracepoint_field_in_the_program_is_declared_in_python() -> None:
    declared: dict[str, set[str]] = {}
    for table in (
        REQUIRED_FIELDS, OPTIONAL_FIELDS, EXEC_SYSCALLS, WAIT_SYSCALLS, CRED_SYSCALLS, CGROUP_EVENTS, OOM_EVENTS
    ):  # fmt: skip
        for (_category, event), names in table.items():
            declared.setdefault(event, set()).update(names)
    undeclared = {(ev, f) for ev, f in tp_uses(program_code()) if f not in declared.get(ev, set())}
    assert undeclared == set()


def test_every_tracepoint_used_has_exactly_one_program() -> None:
    """Each is a TRACEPOINT_PROBE (attached by bcc) or served by a shared program
    (attached by name), never both and never neither."""
    probes = re.findall(r"(?<!RAW_)TRACEPOINT_PROBE\(\s*(\w+)\s*,\s*(\w+)\s*\)", program_code())
    raw = re.findall(r"RAW_TRACEPOINT_PROBE\(\s*(\w+)\s*\)", program_code())
    assert sorted(raw) == sorted(event for _category, event in RAW_TRACEPOINTS)
    shared = [key for _program, keys, _group in SHARED_PROGRAMS for key in keys]
    assert sorted(probes + list(RAW_TRACEPOINTS) + shared) == sorted(tracepoints_used())


def test_every_shared_program_is_a_function_of_the_program() -> None:
    for program, _keys, _group in SHARED_PROGRAMS:
        assert re.search(rf"^int {program}\(void \*args\)$", program_code(), re.M), program


def test_shared_programs_are_attached_to_each_of_their_tracepoints() -> None:
    assert shared_attachments(formats("6.18")) == [
        ("syscalls:sys_exit_execve", "exec_syscall_exit"),
        ("syscalls:sys_exit_execveat", "exec_syscall_exit"),
        ("syscalls:sys_exit_wait4", "wait_syscall_exit"),
        ("syscalls:sys_exit_waitid", "wait_syscall_exit"),
        *((f"syscalls:sys_enter_{name}", "cred_syscall_enter") for name in CRED_SYSCALL_NAMES),
        *((f"syscalls:sys_exit_{name}", "cred_syscall_exit") for name in CRED_SYSCALL_NAMES),
    ]


@pytest.mark.parametrize(
    ("missing", "program", "other"),
    [(key, "exec_syscall_exit", "wait_syscall_exit") for key in EXEC_SYSCALLS]
    + [(key, "wait_syscall_exit", "exec_syscall_exit") for key in WAIT_SYSCALLS],
)
def test_a_shared_program_compiled_out_is_not_attached(missing, program, other) -> None:
    """A kernel without one tracepoint of a group compiles the group's code out
    (its PT_HAVE_* switch): its shared program must not be attached either."""
    attached = {name for _tp, name in shared_attachments(formats("6.18", drop=(missing,)))}
    assert attached == {other, "cred_syscall_enter", "cred_syscall_exit"}


@pytest.mark.parametrize("missing", [*CRED_SYSCALL_ENTRIES[:1], *CRED_SYSCALL_EXITS[-1:]])
def test_without_one_credential_syscall_no_cred_program_is_attached(missing) -> None:
    attached = {name for _tp, name in shared_attachments(formats("6.18", drop=(missing,)))}
    assert attached == {"exec_syscall_exit", "wait_syscall_exit"}
    assert "PT_HAVE_CRED_SYSCALLS" not in build("6.18", drop=(missing,))


def test_cgroup_events_must_share_cgroup_mkdirs_layout() -> None:
    fmts = formats("6.18")
    key = ("cgroup", "cgroup_rename")
    path = fmts[key].fields["path"]
    fmts[key] = replace(fmts[key], fields={**fmts[key].fields, "path": replace(path, offset=path.offset + 4)})
    with pytest.raises(FormatError, match="lay out 'path' differently"):
        build_source(FAKE_OFFSETS, fmts, ProgramOptions())


def test_a_shared_program_refuses_tracepoints_that_lay_out_its_fields_differently() -> None:
    fmts = formats("6.18")
    key = ("syscalls", "sys_exit_execveat")
    ret = fmts[key].fields["ret"]
    fmts[key] = replace(fmts[key], fields={**fmts[key].fields, "ret": replace(ret, offset=ret.offset + 8)})
    with pytest.raises(FormatError, match="lay out 'ret' differently"):
        build_source(FAKE_OFFSETS, fmts, ProgramOptions())


def test_every_tp_macro_the_program_needs_is_defined_for_a_new_kernel() -> None:
    d = build("6.18", follow=True)
    code = program_code()
    missing = []
    for event, field in tp_uses(code):
        if (event, field) == ("sched_process_exit", "group_dead"):
            continue  # optional: the program tests it with #ifdef
        for name in (f"TP_{event}__{field}", f"TP_{event}__{field}_DATALOC"):
            if name not in d:
                missing.append(name)
    assert missing == []


@pytest.mark.parametrize(
    ("function", "tries", "perf_buffer", "event_class"),
    [
        ("submit", ["events", "events", "signal_events"], "events", "PT_CLASS_LIFECYCLE"),
        ("submit_signal", ["signal_events", "signal_events"], "signal_events", "PT_CLASS_SIGNAL"),
    ],
)
def test_a_ring_buffer_submit_that_fails_is_tried_again_before_it_counts_as_lost(
    function: str, tries: list[str], perf_buffer: str, event_class: str
) -> None:
    """A ring can refuse a reserve with room to spare (6.15+): one retry, and
    for a lifecycle event then the signals' ring; count_lost() of the class
    only if every try fails. The perf buffer is one try."""
    body = re.search(rf"void {function}\(.*?\n\}}", program_code(), re.S)
    assert body, f"{function}() not found"
    ring_part, perf_part = body.group(0).split("#else")
    assert re.findall(r"\b(\w+)\.ringbuf_output\(", ring_part) == tries
    assert re.findall(r"\b(\w+)\.perf_submit\(", perf_part) == [perf_buffer]
    assert re.findall(r"\b(\w+)\.(?:ringbuf_output|perf_submit)\(", body.group(0)) == [*tries, perf_buffer]
    assert body.group(0).index(f"count_lost({event_class})") > body.group(0).index("#endif")


def function_bodies(code: str) -> dict[str, str]:
    """The body of each BPF program: TRACEPOINT_PROBE(cat, event) as event, RAW_TRACEPOINT_PROBE(event) as
    event, a shared program by its name."""
    heads = re.finditer(
        r"^(?:RAW_TRACEPOINT_PROBE\((\w+)\)|TRACEPOINT_PROBE\(\w+,\s*(\w+)\)|int (\w+)\(void \*args\))\s*$",
        code,
        re.M,
    )
    bodies = {}
    for head in heads:
        name = head.group(1) or head.group(2) or head.group(3)
        body = code[head.end() : code.index("\n}\n", head.end())]
        bodies[name] = body
    return bodies


def test_lifecycle_events_and_signals_travel_in_buffers_of_their_own() -> None:
    """A flood of signals fills only the signals' buffer: every lifecycle program
    submits to `events`, the signal programs to `signal_events` alone."""
    code = program_code()
    bodies = function_bodies(code)
    helpers = {
        "exec_failed": code[code.index("int exec_failed(") :],
        "submit_exec": code[code.index("void submit_exec(") :],
    }
    for name in ("sched_process_fork", "sched_process_exit", "wait_syscall_exit"):
        assert re.search(r"\bsubmit\(", bodies[name]) and "submit_signal" not in bodies[name], name
    assert "submit_exec(" in bodies["sched_process_exec"]
    assert re.search(r"\bsubmit\(", helpers["submit_exec"].split("\n}\n")[0])
    for name in ("signal_generate", "signal_deliver"):
        assert "submit_signal(" in bodies[name] and not re.search(r"\bsubmit\(", bodies[name]), name


def test_the_signal_options_reach_the_program() -> None:
    d = build(signal_rate=250, signal_buffer_pages=16)
    assert (d["PT_SIGNAL_RATE"], d["PT_SIGNAL_BUFFER_PAGES"]) == ("250", "16")
    assert "PT_ALL_SIGNALS" not in d
    everything = build(all_signals=True)
    assert (everything["PT_SIGNAL_RATE"], everything["PT_ALL_SIGNALS"]) == ("0", "1")


def test_folding_and_the_rate_limit_are_compiled_out_with_all_signals() -> None:
    """Every fold() and within_rate() of the signal programs sits under #ifndef PT_ALL_SIGNALS."""
    text = PROGRAM.read_text()
    for program in ("RAW_TRACEPOINT_PROBE(signal_generate)", "TRACEPOINT_PROBE(signal, signal_deliver)"):
        body = text[text.index(program) :].split("\n}\n")[0]
        guarded = re.findall(r"#ifndef PT_ALL_SIGNALS\n(.*?)#endif", body, re.S)
        assert len(guarded) == 1
        outside = body.replace(guarded[0], "")
        assert "fold(" in guarded[0] and "within_rate(" in guarded[0]
        assert "fold(" not in outside and "within_rate(" not in outside
