"""tracer/kernel/btf.py on BTF blobs assembled here, type by type, and on the running kernel's own BTF."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from proctrace.kernel.btf import (
    BTF_MAGIC,
    KIND_CONST,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_INT,
    KIND_PTR,
    KIND_STRUCT,
    KIND_TYPEDEF,
    KIND_UNION,
    Btf,
    BtfError,
)

from tests.environment import requires

VMLINUX = Path("/sys/kernel/btf/vmlinux")
HEADER_LEN = 24


class BtfBuilder:
    """Writes a BTF blob the way the kernel lays it out: header, type section, string section.

    Every add_* method returns the new type's id (ids count from 1; 0 is void).
    """

    def __init__(self) -> None:
        self._strings = bytearray(b"\0")  # offset 0 is the empty name
        self._types: list[bytes] = []

    def _name(self, name: str) -> int:
        if not name:
            return 0
        off = len(self._strings)
        self._strings += name.encode() + b"\0"
        return off

    def _add(self, name: str, kind: int, vlen: int, size_or_type: int, trailer: bytes = b"", kind_flag=False) -> int:
        info = (int(kind_flag) << 31) | (kind << 24) | vlen
        self._types.append(struct.pack("<III", self._name(name), info, size_or_type) + trailer)
        return len(self._types)

    def add_raw(self, name_off: int, kind: int, vlen: int, size_or_type: int, trailer: bytes = b"") -> int:
        info = (kind << 24) | vlen
        self._types.append(struct.pack("<III", name_off, info, size_or_type) + trailer)
        return len(self._types)

    def add_int(self, name: str, size: int, signed: bool = True) -> int:
        encoding = 1 if signed else 0
        return self._add(name, KIND_INT, 0, size, struct.pack("<I", (encoding << 24) | (size * 8)))

    def add_ptr(self, target: int) -> int:
        return self._add("", KIND_PTR, 0, target)

    def add_typedef(self, name: str, target: int) -> int:
        return self._add(name, KIND_TYPEDEF, 0, target)

    def add_const(self, target: int) -> int:
        return self._add("", KIND_CONST, 0, target)

    def add_composite(
        self,
        name: str,
        size: int,
        members: list[tuple[str, int, int] | tuple[str, int, int, int]],
        union: bool = False,
        kind_flag: bool = False,
    ) -> int:
        """members: (name, type id, bit offset[, bitfield size]); the size needs kind_flag."""
        trailer = b""
        for m in members:
            mname, mtype, bit_off = m[:3]
            bitfield_size = m[3] if len(m) == 4 else 0
            if bitfield_size and not kind_flag:
                raise ValueError("a bitfield size needs kind_flag")
            offset = (bitfield_size << 24) | bit_off if kind_flag else bit_off
            trailer += struct.pack("<III", self._name(mname), mtype, offset)
        kind = KIND_UNION if union else KIND_STRUCT
        return self._add(name, kind, len(members), size, trailer, kind_flag)

    def add_enum(self, name: str, values: list[tuple[str, int]], signed: bool = False) -> int:
        trailer = b"".join(struct.pack("<Ii" if signed else "<II", self._name(n), v) for n, v in values)
        return self._add(name, KIND_ENUM, len(values), 4, trailer, kind_flag=signed)

    def add_enum64(self, name: str, values: list[tuple[str, int]]) -> int:
        trailer = b"".join(struct.pack("<III", self._name(n), v & 0xFFFFFFFF, v >> 32) for n, v in values)
        return self._add(name, KIND_ENUM64, len(values), 8, trailer)

    def blob(self, *, types_last: bool = False, magic: int = BTF_MAGIC, types: bytes | None = None) -> bytes:
        type_sec = b"".join(self._types) if types is None else types
        str_sec = bytes(self._strings)
        if types_last:
            offs = (len(str_sec), len(type_sec), 0, len(str_sec))
            body = str_sec + type_sec
        else:
            offs = (0, len(type_sec), len(type_sec), len(str_sec))
            body = type_sec + str_sec
        return struct.pack("<HBBIIIII", magic, 1, 0, HEADER_LEN, *offs) + body


def kernelish() -> BtfBuilder:
    """A few types shaped like the kernel's: struct task with a pointer, a typedef'd
    embedded struct, an anonymous union with an anonymous struct inside, and a
    struct with bitfields (kind_flag set, as pahole emits them)."""
    b = BtfBuilder()
    int_t = b.add_int("int", 4)  # 1
    long_t = b.add_int("long", 8)  # 2
    uint_t = b.add_int("unsigned int", 4, signed=False)  # 3
    pair = b.add_composite("pair", 8, [("first", int_t, 0), ("second", int_t, 32)])  # 4
    pair_t = b.add_typedef("pair_t", pair)  # 5
    const_pair_t = b.add_const(pair_t)  # 6
    # struct { int lo; int hi; } -- anonymous, lives inside the union below
    anon_struct = b.add_composite("", 8, [("lo", int_t, 0), ("hi", int_t, 32)])  # 7
    # union { long whole; struct { int lo; int hi; }; } -- anonymous
    anon_union = b.add_composite("", 8, [("whole", long_t, 0), ("", anon_struct, 0)], union=True)  # 8
    task_ptr = b.add_ptr(0)  # 9: void *; what it points to does not change offsets
    b.add_composite(
        "task",
        48,
        [
            ("state", int_t, 0),
            ("parent", task_ptr, 64),
            ("", anon_union, 128),  # bytes 16..23
            ("ids", pair_t, 192),  # bytes 24..31, through a typedef
            ("cids", const_pair_t, 256),  # bytes 32..39, through const + typedef
            ("tail", long_t, 320),  # bytes 40..47
        ],
    )
    # struct bits { unsigned a:3; unsigned b:5; unsigned c:8; int d; }
    b.add_composite(
        "bits",
        8,
        [("a", uint_t, 0, 3), ("b", uint_t, 3, 5), ("c", uint_t, 8, 8), ("d", int_t, 32)],
        kind_flag=True,
    )
    b.add_composite("either", 8, [("as_int", int_t, 0), ("as_long", long_t, 0)], union=True)
    return b


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf(kernelish().blob())


def test_offsetof_plain_members_converts_bits_to_bytes(btf: Btf) -> None:
    assert btf.offsetof("task", "state") == 0
    assert btf.offsetof("task", "parent") == 8
    assert btf.offsetof("task", "tail") == 40


def test_sizeof_gives_the_struct_size(btf: Btf) -> None:
    assert btf.sizeof("task") == 48
    assert btf.sizeof("bits") == 8


def test_offsetof_finds_a_member_inside_an_anonymous_union(btf: Btf) -> None:
    assert btf.offsetof("task", "whole") == 16


def test_offsetof_adds_offsets_through_nested_anonymous_members(btf: Btf) -> None:
    # task -> anonymous union at byte 16 -> anonymous struct at 0 -> hi at byte 4
    assert btf.offsetof("task", "lo") == 16
    assert btf.offsetof("task", "hi") == 20


def test_offsetof_keeps_searching_after_an_anonymous_member_without_the_name(btf: Btf) -> None:
    assert btf.offsetof("task", "ids") == 24


def test_offsetof_dotted_path_follows_a_typedef_to_the_embedded_struct(btf: Btf) -> None:
    assert btf.offsetof("task", "ids.first") == 24
    assert btf.offsetof("task", "ids.second") == 28


def test_offsetof_dotted_path_follows_const_then_typedef(btf: Btf) -> None:
    assert btf.offsetof("task", "cids.second") == 36


def test_offsetof_works_on_a_named_union(btf: Btf) -> None:
    assert btf.offsetof("either", "as_long") == 0
    assert btf.sizeof("either") == 8


def test_kind_flag_struct_byte_aligned_members_have_the_right_offset(btf: Btf) -> None:
    # With kind_flag the member's offset word is (bitfield size << 24 | bit offset):
    # the size must be masked off, or "c" (8 bits at bit 8) would land at byte 0x1000001.
    assert btf.offsetof("bits", "c") == 1
    assert btf.offsetof("bits", "d") == 4


def test_kind_flag_members_report_bit_offsets_without_the_bitfield_size(btf: Btf) -> None:
    members = btf.members(btf.struct_id("bits"))
    assert [(m.name, m.bit_offset) for m in members] == [("a", 0), ("b", 3), ("c", 8), ("d", 32)]


def test_offsetof_a_bitfield_at_a_non_byte_offset_raises(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"bits\.b is a bitfield"):
        btf.offsetof("bits", "b")


def test_missing_struct_raises_with_its_name(btf: Btf) -> None:
    with pytest.raises(BtfError, match="no_such_struct"):
        btf.offsetof("no_such_struct", "x")


def test_typedef_name_is_not_looked_up_as_a_struct(btf: Btf) -> None:
    with pytest.raises(BtfError, match="pair_t"):
        btf.struct_id("pair_t")


def test_missing_member_raises_naming_struct_and_member(btf: Btf) -> None:
    with pytest.raises(BtfError) as exc:
        btf.offsetof("task", "no_such_member")
    assert "task" in str(exc.value)
    assert "no_such_member" in str(exc.value)


def test_missing_member_in_a_dotted_path_raises(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"ids\.third"):
        btf.offsetof("task", "ids.third")


def test_dotted_path_through_a_pointer_member_raises(btf: Btf) -> None:
    # parent is a pointer: its target is not embedded, so no offset can be added.
    with pytest.raises(BtfError):
        btf.offsetof("task", "parent.state")


def test_blob_whose_types_follow_the_strings_parses_the_same() -> None:
    btf = Btf(kernelish().blob(types_last=True))
    assert btf.offsetof("task", "hi") == 20


def test_unknown_kind_raises() -> None:
    b = BtfBuilder()
    b.add_int("int", 4)
    b.add_raw(0, 20, 0, 0)  # one past KIND_ENUM64
    with pytest.raises(BtfError, match="unknown BTF kind 20"):
        Btf(b.blob())


def test_bad_magic_raises() -> None:
    with pytest.raises(BtfError, match="not BTF"):
        Btf(kernelish().blob(magic=0x9FEB))  # the magic read with the wrong byte order


def test_blob_shorter_than_the_header_raises() -> None:
    with pytest.raises(BtfError):
        Btf(kernelish().blob()[: HEADER_LEN - 1])


@pytest.mark.parametrize("cut", [1, 4, 100])
def test_truncated_blob_raises(cut: int) -> None:
    blob = kernelish().blob()
    with pytest.raises(BtfError):
        Btf(blob[:-cut])


def test_type_section_ending_inside_a_type_raises() -> None:
    b = kernelish()
    types = b"".join(b._types)
    with pytest.raises(BtfError):
        Btf(b.blob(types=types[:-4]))  # the header's lengths agree with the cut section


def test_type_section_ending_inside_a_type_header_at_the_end_of_the_blob_raises() -> None:
    # Types placed after the strings: the last type header now runs off the blob itself.
    b = kernelish()
    types = b"".join(b._types)
    with pytest.raises(BtfError):
        Btf(b.blob(types=types[: -(len(b._types[-1]) - 6)], types_last=True))


def test_name_offset_past_the_string_section_raises() -> None:
    b = BtfBuilder()
    b.add_int("int", 4)
    b.add_raw(10_000, KIND_STRUCT, 0, 0)
    with pytest.raises(BtfError):
        Btf(b.blob())


def test_enumerators_give_names_and_values_of_an_enum() -> None:
    b = BtfBuilder()
    b.add_enum("bpf_func_id", [("BPF_FUNC_unspec", 0), ("BPF_FUNC_probe_read_user", 112)])
    assert Btf(b.blob()).enumerators("bpf_func_id") == {"BPF_FUNC_unspec": 0, "BPF_FUNC_probe_read_user": 112}


def test_enumerators_of_a_signed_enum_are_negative_where_the_bits_say() -> None:
    b = BtfBuilder()
    b.add_enum("e", [("MINUS_ONE", -1)], signed=True)
    assert Btf(b.blob()).enumerators("e") == {"MINUS_ONE": -1}


def test_enumerators_of_a_64_bit_enum_join_both_halves() -> None:
    b = BtfBuilder()
    b.add_enum64("big", [("HIGH", 1 << 40 | 7)])
    assert Btf(b.blob()).enumerators("big") == {"HIGH": 1 << 40 | 7}


def test_missing_enum_raises_with_its_name() -> None:
    b = BtfBuilder()
    b.add_int("int", 4)
    with pytest.raises(BtfError, match="no enum named 'bpf_func_id'"):
        Btf(b.blob()).enumerators("bpf_func_id")


def test_member_with_an_out_of_range_type_id_raises() -> None:
    b = BtfBuilder()
    b.add_composite("s", 8, [("", 99, 0)])  # an anonymous member of a type that does not exist
    with pytest.raises(BtfError, match="out of range"):
        Btf(b.blob()).offsetof("s", "x")


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    requires(VMLINUX.exists(), f"{VMLINUX} does not exist: kernel built without CONFIG_DEBUG_INFO_BTF")
    requires(os.access(VMLINUX, os.R_OK), f"{VMLINUX} is not readable by this user")
    return Btf.from_file(VMLINUX)


def test_real_kernel_tgid_follows_pid_in_task_struct(vmlinux: Btf) -> None:
    # pid_t pid; pid_t tgid; are adjacent in every kernel's task_struct.
    assert vmlinux.offsetof("task_struct", "pid") + 4 == vmlinux.offsetof("task_struct", "tgid")


def test_real_kernel_names_the_user_read_helpers_in_its_helper_enum(vmlinux: Btf) -> None:
    helpers = vmlinux.enumerators("bpf_func_id")
    assert helpers["BPF_FUNC_probe_read_user"] > helpers["BPF_FUNC_map_lookup_elem"] > 0


def test_real_kernel_offsets_proctrace_reads_lie_within_their_structs(vmlinux: Btf) -> None:
    from proctrace.kernel.layout import MEMBERS

    # Flexible array members (gid[], numbers[]) begin where the struct ends, or
    # inside it on kernels that declare them with one element.
    flexible = {("group_info", "gid"), ("pid", "numbers")}
    for struct_name, member in MEMBERS:
        off = vmlinux.offsetof(struct_name, member)
        end = vmlinux.sizeof(struct_name)
        assert 0 <= off < end or ((struct_name, member) in flexible and off == end), (struct_name, member, off)
