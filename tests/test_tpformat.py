"""tracer/kernel/tracepoints.py on canned tracefs format files.

tests/data/formats/6.18/ holds the files as a 6.18 kernel prints them; 5.15/ holds
pre-2025 variants written by hand (char comm arrays, no group_dead). The cgroup
and credential-syscall files are the same in both: their layout has not changed
since 5.7, when cgroup ids became 64-bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proctrace.kernel.tracepoints import Field, FormatError, parse_format, read_format

FORMATS = Path(__file__).parent / "data" / "formats"
CATEGORY = {"sched_process_fork": "sched", "sched_process_exec": "sched", "sched_process_exit": "sched"}
CATEGORY.update(signal_generate="signal", signal_deliver="signal", task_newtask="task")


def load(kernel: str, event: str):
    category = CATEGORY.get(event, "syscalls")
    return parse_format(category, event, (FORMATS / kernel / f"{event}.format").read_text())


def test_new_kernel_fork_comms_are_data_loc_strings() -> None:
    fmt = load("6.18", "sched_process_fork")
    assert fmt.fields["parent_comm"] == Field("parent_comm", "__data_loc char[]", 8, 4, True)
    assert fmt.fields["child_comm"] == Field("child_comm", "__data_loc char[]", 16, 4, True)


def test_new_kernel_fork_pids_are_plain_fields_at_their_offsets() -> None:
    fmt = load("6.18", "sched_process_fork")
    assert fmt.fields["parent_pid"] == Field("parent_pid", "pid_t", 12, 4, False)
    assert fmt.fields["child_pid"] == Field("child_pid", "pid_t", 20, 4, False)


def test_old_kernel_fork_comms_are_char_arrays() -> None:
    fmt = load("5.15", "sched_process_fork")
    assert fmt.fields["parent_comm"] == Field("parent_comm", "char[16]", 8, 16, False)
    assert fmt.fields["child_comm"] == Field("child_comm", "char[16]", 28, 16, False)
    assert fmt.fields["child_pid"].offset == 44


def test_fields_are_listed_in_file_order_without_common_fields() -> None:
    assert list(load("6.18", "sched_process_fork").fields) == ["parent_comm", "parent_pid", "child_comm", "child_pid"]
    assert list(load("6.18", "signal_generate").fields) == ["sig", "errno", "code", "comm", "pid", "group", "result"]


@pytest.mark.parametrize("kernel", ["6.18", "5.15"])
@pytest.mark.parametrize("event", ["sched_process_fork", "sched_process_exec", "signal_generate", "sys_enter_execve"])
def test_common_fields_are_skipped(kernel: str, event: str) -> None:
    fmt = load(kernel, event)
    assert not [name for name in fmt.fields if name.startswith("common_")]
    assert min(f.offset for f in fmt.fields.values()) >= 8  # the common header is bytes 0..7


def test_exec_filename_is_data_loc_on_both_kernels() -> None:
    for kernel in ("6.18", "5.15"):
        f = load(kernel, "sched_process_exec").fields["filename"]
        assert (f.offset, f.size, f.data_loc) == (8, 4, True), kernel
        assert load(kernel, "sched_process_exec").fields["old_pid"].offset == 16


def test_group_dead_exists_only_on_the_new_kernel() -> None:
    new = load("6.18", "sched_process_exit")
    assert new.fields["group_dead"] == Field("group_dead", "bool", 32, 1, False)
    assert "group_dead" not in load("5.15", "sched_process_exit").fields


def test_pointer_declarations_give_the_name_after_the_stars() -> None:
    fmt = load("6.18", "sys_enter_execve")
    assert fmt.fields["filename"] == Field("filename", "const char *", 16, 8, False)
    assert fmt.fields["argv"] == Field("argv", "const char *const *", 24, 8, False)
    assert fmt.fields["envp"].offset == 32


def test_syscall_nr_is_kept_and_ret_is_a_long() -> None:
    fmt = load("6.18", "sys_exit_execve")
    assert fmt.fields["__syscall_nr"].offset == 8
    assert fmt.fields["ret"] == Field("ret", "long", 16, 8, False)


def test_struct_pointer_field_type_and_offset() -> None:
    assert load("6.18", "sys_enter_waitid").fields["infop"] == Field("infop", "struct siginfo *", 32, 8, False)


def test_print_fmt_and_header_lines_are_not_fields() -> None:
    fmt = load("6.18", "sched_process_exec")
    assert set(fmt.fields) == {"filename", "pid", "old_pid"}


def test_empty_text_raises() -> None:
    with pytest.raises(FormatError, match="lists no fields"):
        parse_format("sched", "sched_process_exit", "")


def test_format_with_only_common_fields_raises() -> None:
    text = "name: x\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    with pytest.raises(FormatError):
        parse_format("sched", "x", text)


def test_read_format_reads_root_events_category_event_format(tmp_path: Path) -> None:
    src = FORMATS / "6.18" / "sched_process_exit.format"
    (tmp_path / "events" / "sched" / "sched_process_exit").mkdir(parents=True)
    (tmp_path / "events" / "sched" / "sched_process_exit" / "format").write_text(src.read_text())
    fmt = read_format("sched", "sched_process_exit", root=tmp_path)
    assert (fmt.category, fmt.event) == ("sched", "sched_process_exit")
    assert fmt.fields["group_dead"].offset == 32


def test_read_format_of_a_missing_tracepoint_raises_naming_it(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    with pytest.raises(FormatError, match="syscalls:sys_enter_execve does not exist"):
        read_format("syscalls", "sys_enter_execve", root=tmp_path)
