"""bpf/event.h and tracer/kernel/wire.py describe the same bytes; this test fails when they drift.

The header is compiled with the host C compiler into a small program that prints
the size of every struct, the offset, size and signedness of every field that
wire.LAYOUTS names, and the enum and flag values. The Python side of each number
comes from walking the struct format strings ("<" formats have no implicit
alignment, so the padding in them is explicit and their offsets are exact).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from proctrace.kernel import wire
from proctrace.model import events

from tests.environment import requires

HEADER = Path(__file__).resolve().parent.parent / "bpf" / "event.h"
CC = shutil.which("gcc")


# wire.py constant -> the C name it mirrors
CONSTANTS = {
    name: "PT_" + name.removeprefix("KIND_")
    for name in dir(wire)
    if name.startswith(("KIND_", "EXEC_", "CLASS_", "FOLD_", "CGROUP_", "USAGE", "DEATH_"))
}
EVENT_CONSTANTS = {"SIGNAL_GENERATE": "PT_SIGNAL_GENERATE", "SIGNAL_DELIVER": "PT_SIGNAL_DELIVER"}


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # from the start of the C struct, header included
    size: int
    code: str  # the struct module's format character

    @property
    def is_array(self) -> bool:
        return self.code == "s"

    @property
    def signed(self) -> bool:
        return self.code in "bhilqn"


_FORMAT_ITEM = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")


def python_fields(struct_name: str) -> list[Field]:
    """The fields of one LAYOUTS entry with their offsets in the C struct."""
    fmt, names = wire.LAYOUTS[struct_name]
    assert fmt[0] == "<", f"{struct_name}: format {fmt!r} must be little-endian with standard sizes ('<')"
    base = 0 if struct_name in wire.HEADERLESS else wire.HEADER_SIZE
    items: list[tuple[int, int, str]] = []  # (offset, size, code) of each value the format produces
    offset = 0
    body = fmt[1:]
    assert "".join(m.group() for m in _FORMAT_ITEM.finditer(body)) == body, f"{struct_name}: cannot parse {fmt!r}"
    for match in _FORMAT_ITEM.finditer(body):
        count = int(match.group(1) or 1)
        code = match.group(2)
        if code == "x":
            offset += count
        elif code in "sp":
            items.append((offset, count, code))
            offset += count
        else:
            size = struct.calcsize("<" + code)
            for _ in range(count):
                items.append((offset, size, code))
                offset += size
    assert offset == struct.calcsize(fmt)
    assert len(items) == len(names), (
        f"{struct_name}: format {fmt!r} yields {len(items)} values but {len(names)} field names are given"
    )
    return [Field(name, base + off, size, code) for name, (off, size, code) in zip(names, items, strict=True)]


def python_size(struct_name: str) -> int:
    size = struct.calcsize(wire.LAYOUTS[struct_name][0])
    return size if struct_name in wire.HEADERLESS else wire.HEADER_SIZE + size


def checked_fields(struct_name: str) -> list[Field]:
    """Fields compared with C: padding ("_" names) is only counted in the sizes."""
    return [f for f in python_fields(struct_name) if not f.name.startswith("_")]


def header_defines() -> dict[str, int]:
    """The header's numeric #defines (array lengths are among them)."""
    return {m[1]: int(m[2], 0) for m in re.finditer(r"#define\s+(\w+)\s+(\d+|0x[0-9a-fA-F]+)\b", HEADER.read_text())}


def c_members(struct_name: str) -> list[str]:
    """Member names of a struct in the header, read from its text (which is simple C).

    A member that is another wire struct (other than the header) is named by
    its own members, "cred.uid"; an array of numbers by its elements,
    "groups[0]": as wire.LAYOUTS names them, since a struct format is flat."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", HEADER.read_text(), flags=re.S)
    body = re.search(rf"struct\s+{struct_name}\s*\{{(.*?)\}};", text, flags=re.S)
    assert body, f"struct {struct_name} not found in {HEADER}"
    defines = header_defines()
    names = []
    for decl in body.group(1).split(";"):
        decl = decl.strip()
        if decl:
            match = re.search(r"(\w+)\s*(\[([^\]]*)\])?$", decl)
            assert match, f"cannot read the member declaration {decl!r} in struct {struct_name}"
            nested = re.match(r"struct\s+(pt_\w+)\s", decl)
            if nested and nested.group(1) != "pt_header":
                names += [f"{match.group(1)}.{inner}" for inner in c_members(nested.group(1))]
            elif match.group(3) and not decl.startswith("char"):
                length = defines.get(match.group(3).strip()) or int(match.group(3))
                names += [f"{match.group(1)}[{i}]" for i in range(length)]
            else:
                names.append(match.group(1))
    return names


def c_struct_names() -> list[str]:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    return re.findall(r"struct\s+(pt_\w+)\s*\{", text)


def c_program() -> str:
    lines = [
        "#include <stddef.h>",
        "#include <stdio.h>",
        "typedef unsigned char __u8;",
        "typedef unsigned short __u16;",
        "typedef unsigned int __u32;",
        "typedef unsigned long long __u64;",
        "typedef signed char __s8;",
        "typedef short __s16;",
        "typedef int __s32;",
        "typedef long long __s64;",
        f'#include "{HEADER}"',
        "#define MEMBER(s, f) (((struct s *)0)->f)",
        "int main(void)",
        "{",
    ]
    for name in wire.LAYOUTS:
        lines.append(f'    printf("size {name} %zu\\n", sizeof(struct {name}));')
        if name not in wire.HEADERLESS:
            lines.append(
                f'    printf("field {name} h %zu %zu 0\\n", offsetof(struct {name}, h), sizeof(MEMBER({name}, h)));'
            )
        for f in checked_fields(name):
            # arrays: the element size stands in for signedness, which a char array does not have
            signed = (
                f"(int)sizeof(MEMBER({name}, {f.name})[0])"
                if f.is_array
                else f"(int)((__typeof__(MEMBER({name}, {f.name})))-1 < 0)"
            )
            lines.append(
                f'    printf("field {name} {f.name} %zu %zu %d\\n", offsetof(struct {name}, {f.name}), '
                f"sizeof(MEMBER({name}, {f.name})), {signed});"
            )
    for c_name in [*CONSTANTS.values(), *EVENT_CONSTANTS.values()]:
        lines.append(f'    printf("const {c_name} %lld\\n", (long long)({c_name}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@dataclass
class CLayout:
    sizes: dict[str, int]
    fields: dict[tuple[str, str], tuple[int, int, int]]  # (struct, field) -> (offset, size, signed or elem size)
    constants: dict[str, int]


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> CLayout:
    requires(CC is not None, "needs gcc to compile bpf/event.h")
    assert CC is not None
    workdir = tmp_path_factory.mktemp("wire_layout")
    source, program = workdir / "layout.c", workdir / "layout"
    source.write_text(c_program())
    compiled = subprocess.run(
        [CC, "-std=gnu11", "-Wall", "-o", str(program), str(source)], capture_output=True, text=True
    )
    assert compiled.returncode == 0, (
        f"bpf/event.h no longer compiles with the fields wire.LAYOUTS names:\n{compiled.stderr}"
    )
    out = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout
    layout = CLayout({}, {}, {})
    for line in out.splitlines():
        tag, *rest = line.split()
        if tag == "size":
            layout.sizes[rest[0]] = int(rest[1])
        elif tag == "field":
            layout.fields[(rest[0], rest[1])] = (int(rest[2]), int(rest[3]), int(rest[4]))
        else:
            layout.constants[rest[0]] = int(rest[1])
    return layout


def mismatches(struct_name: str, layout: CLayout) -> list[str]:
    """Every way the Python layout of one struct differs from the compiled C one."""
    problems = []
    if layout.sizes[struct_name] != python_size(struct_name):
        problems.append(
            f"sizeof(struct {struct_name}) is {layout.sizes[struct_name]} in C "
            f"but {python_size(struct_name)} in wire.LAYOUTS"
        )
    if struct_name not in wire.HEADERLESS and layout.fields[(struct_name, "h")][:2] != (0, wire.HEADER_SIZE):
        problems.append(f"struct {struct_name} must start with struct pt_header h")
    for f in checked_fields(struct_name):
        c_offset, c_size, c_extra = layout.fields[(struct_name, f.name)]
        where = f"{struct_name}.{f.name}"
        if c_offset != f.offset:
            problems.append(f"{where} is at offset {c_offset} in C but {f.offset} in wire.LAYOUTS")
        if c_size != f.size:
            problems.append(f"{where} is {c_size} bytes in C but {f.size} in wire.LAYOUTS ({f.code!r})")
        if f.is_array and c_extra != 1:
            problems.append(f"{where} is an array of {c_extra}-byte elements in C, bytes in wire.LAYOUTS")
        if not f.is_array and bool(c_extra) != f.signed:
            c_sign, py_sign = ("signed", "unsigned") if c_extra else ("unsigned", "signed")
            problems.append(f"{where} is {c_sign} in C but {py_sign} in wire.LAYOUTS ({f.code!r})")
    return problems


# ---------------------------------------------------------------------------


def test_every_c_struct_has_a_python_layout():
    assert sorted(c_struct_names()) == sorted(wire.LAYOUTS)


@pytest.mark.parametrize("struct_name", list(wire.LAYOUTS))
def test_python_layout_names_every_c_member(struct_name: str):
    c_names = [n for n in c_members(struct_name) if n != "h" and not n.startswith("_")]
    py_names = [f.name for f in checked_fields(struct_name)]
    assert py_names == c_names, f"struct {struct_name}: members in C {c_names}, in wire.LAYOUTS {py_names}"


@pytest.mark.parametrize("struct_name", list(wire.LAYOUTS))
def test_python_layout_matches_the_compiled_header(struct_name: str, c_layout: CLayout):
    problems = mismatches(struct_name, c_layout)
    assert not problems, "wire.py drifted from bpf/event.h:\n  " + "\n  ".join(problems)


def test_decoder_structs_are_the_layouts(c_layout: CLayout):
    """The decoder unpacks each kind as header and payload in one struct: that
    struct must be exactly the two LAYOUTS entries, as long as the C struct."""
    assert wire.HEADER.format == wire.LAYOUTS["pt_header"][0]
    header = wire.LAYOUTS["pt_header"][0]
    for name, compiled in [
        ("pt_fork", wire.FORK),
        ("pt_exec", wire.EXEC),
        ("pt_exit", wire.EXIT),
        ("pt_signal", wire.SIGNAL),
        ("pt_reap", wire.REAP),
        ("pt_fold", wire.FOLDED),
    ]:
        assert compiled.format == header + wire.LAYOUTS[name][0][1:], f"wire's {name} struct is not its LAYOUTS"
        assert compiled.size == c_layout.sizes[name], f"wire's {name} struct is not sizeof(struct {name})"


def test_the_fold_key_struct_is_its_layout(c_layout: CLayout):
    assert wire.FOLDED_KEY.format == wire.LAYOUTS["pt_fold_key"][0]
    assert wire.FOLDED_KEY.size == c_layout.sizes["pt_fold_key"]


def test_classes_are_indexed_in_the_models_order():
    assert events.EVENT_CLASSES[wire.CLASS_LIFECYCLE] == events.LIFECYCLE
    assert events.EVENT_CLASSES[wire.CLASS_SIGNAL] == events.SIGNALS
    assert (wire.FOLD_PTRACE, wire.FOLD_RATE) == (events.FOLD_PTRACE, events.FOLD_RATE)


def test_decoder_reads_the_kind_where_the_header_has_it(c_layout: CLayout):
    assert c_layout.fields[("pt_header", "kind")][0] == wire.HEADER_KIND_OFFSET


@pytest.mark.parametrize(("py_name", "c_name"), sorted(CONSTANTS.items()))
def test_kind_and_exec_flag_values_match_the_header(py_name: str, c_name: str, c_layout: CLayout):
    assert getattr(wire, py_name) == c_layout.constants[c_name], (
        f"wire.{py_name} = {getattr(wire, py_name)} but {c_name} = {c_layout.constants[c_name]} in bpf/event.h"
    )


@pytest.mark.parametrize(("py_name", "c_name"), sorted(EVENT_CONSTANTS.items()))
def test_signal_stage_values_match_the_header(py_name: str, c_name: str, c_layout: CLayout):
    assert getattr(events, py_name) == c_layout.constants[c_name]


def test_constants_cover_every_kind_and_flag():
    assert {"KIND_FORK", "KIND_EXEC", "KIND_EXIT", "KIND_SIGNAL", "KIND_REAP"} <= set(CONSTANTS)
    assert {"EXEC_ARGV_TRUNCATED", "EXEC_FILENAME_TRUNCATED", "EXEC_ARGV_UNREADABLE"} <= set(CONSTANTS)
    c_flags = set(re.findall(r"#define\s+(PT_EXEC_\w+)", HEADER.read_text()))
    c_kinds = set(re.findall(r"\b(PT_(?:FORK|EXEC|EXIT|SIGNAL|REAP))\s*=", HEADER.read_text()))
    assert c_flags | c_kinds <= set(CONSTANTS.values()), "a kind or flag in bpf/event.h has no wire.py constant"


def test_a_drifted_field_is_reported_by_name(c_layout: CLayout, monkeypatch: pytest.MonkeyPatch):
    """The guard itself: widen pt_fork.child_pid in Python and the comparison names it."""
    drifted = dict(wire.LAYOUTS)
    drifted["pt_fork"] = ("<QQIII", wire.LAYOUTS["pt_fork"][1])
    monkeypatch.setattr(wire, "LAYOUTS", drifted)
    problems = mismatches("pt_fork", c_layout)
    assert any(p.startswith("pt_fork.child_pid is 4 bytes in C but 8") for p in problems), problems
    at = wire.HEADER_SIZE + 12  # after clone_flags and child_pid
    assert any(p.startswith(f"pt_fork.child_tgid is at offset {at} in C but {at + 4}") for p in problems), problems


def test_the_exec_decoders_three_parts_are_the_exec_layout(c_layout: CLayout):
    """wire decodes an exec as its front, two credentials as bytes, and its back:
    together they must be the pt_exec layout, field for field."""
    front, back = wire._EXEC_FRONT.format, wire._EXEC_BACK.format
    assert front + wire.CRED.format[1:] * 2 + back[1:] == wire.EXEC.format
    assert c_layout.fields[("pt_exec", "cred.uid")][0] == wire._EXEC_CRED_AT
    assert wire._EXEC_CRED_AT + wire.CRED.size == c_layout.fields[("pt_exec", "cred_before.uid")][0]
    assert c_layout.fields[("pt_exec", "exe_ino")][0] == wire._EXEC_BACK_AT
