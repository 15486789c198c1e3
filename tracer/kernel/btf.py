"""A minimal reader of BPF Type Format (BTF) blobs, such as /sys/kernel/btf/vmlinux.

It owns one question: at which byte offset does a member of a kernel struct live
on *this* kernel? Kernel headers that do not match the running kernel give wrong
offsets silently; the kernel's own BTF cannot be wrong about itself.

Only what that question needs is decoded: named structs and unions, their members
(following anonymous members), and the typedef/qualifier chain in between.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from proctrace.kernel.errors import KernelError

BTF_MAGIC = 0xEB9F

KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

# Bytes that follow the 12-byte common type header, per kind: (fixed, per vlen item).
_TRAILER = {
    KIND_INT: (4, 0),
    KIND_PTR: (0, 0),
    KIND_ARRAY: (12, 0),
    KIND_STRUCT: (0, 12),
    KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8),
    KIND_FWD: (0, 0),
    KIND_TYPEDEF: (0, 0),
    KIND_VOLATILE: (0, 0),
    KIND_CONST: (0, 0),
    KIND_RESTRICT: (0, 0),
    KIND_FUNC: (0, 0),
    KIND_FUNC_PROTO: (0, 8),
    KIND_VAR: (4, 0),
    KIND_DATASEC: (0, 12),
    KIND_FLOAT: (0, 0),
    KIND_DECL_TAG: (4, 0),
    KIND_TYPE_TAG: (0, 0),
    KIND_ENUM64: (0, 12),
}
_MODIFIERS = {KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}


class BtfError(KernelError):
    """The BTF blob is malformed, or does not hold what was asked for."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int


@dataclass(frozen=True)
class _Type:
    kind: int
    name: str
    size_or_type: int
    # Byte position of the kind-specific trailer in the blob, decoded lazily:
    # most of the ~130k kernel types are never looked at.
    trailer: int
    vlen: int
    kind_flag: bool


class Btf:
    """Types of one BTF blob, indexed by id, with named structs/unions by name."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 24:
            raise BtfError("BTF blob too short for its header")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"not BTF (magic 0x{magic:04x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self._blob = blob
        self._types_start = hdr_len + type_off
        self._strings_start = hdr_len + str_off
        self._strings_end = self._strings_start + str_len
        if self._types_start + type_len > len(blob) or self._strings_end > len(blob):
            raise BtfError("BTF sections run past the end of the blob")
        self._types: list[_Type | None] = [None]  # type id 0 is void
        self._composites: dict[str, int] = {}
        self._enums: dict[str, int] = {}
        self._parse_types(type_len)

    @classmethod
    def from_file(cls, path: str | Path = "/sys/kernel/btf/vmlinux") -> Btf:
        return cls(Path(path).read_bytes())

    def _string(self, off: int) -> str:
        start = self._strings_start + off
        end = self._blob.find(b"\0", start, self._strings_end)
        if off < 0 or end < 0:
            raise BtfError(f"string offset {off} is outside the BTF string section")
        return self._blob[start:end].decode("utf-8", "replace")

    def _parse_types(self, type_len: int) -> None:
        blob = self._blob
        pos = self._types_start
        end = pos + type_len
        header = struct.Struct("<III")
        unpack = header.unpack_from
        trailers = _TRAILER
        composites = self._composites
        enums = self._enums
        types = self._types
        while pos < end:
            if pos + 12 > end:
                raise BtfError(f"BTF type section ends inside a type header at byte {pos}")
            name_off, info, size_or_type = unpack(blob, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            try:
                fixed, per_item = trailers[kind]
            except KeyError:
                raise BtfError(f"unknown BTF kind {kind} at byte {pos}") from None
            name = ""
            if kind in (KIND_STRUCT, KIND_UNION) and name_off:
                name = self._string(name_off)
                # The first definition wins; forward declarations are KIND_FWD.
                composites.setdefault(name, len(types))
            elif kind in (KIND_ENUM, KIND_ENUM64) and name_off:
                name = self._string(name_off)
                enums.setdefault(name, len(types))
            types.append(_Type(kind, name, size_or_type, pos + 12, vlen, bool(info >> 31)))
            pos += 12 + fixed + per_item * vlen
        if pos != end:
            raise BtfError("BTF type section does not end on a type boundary")

    def struct_id(self, name: str) -> int:
        try:
            return self._composites[name]
        except KeyError:
            raise BtfError(f"no struct or union named {name!r} in BTF") from None

    def members(self, type_id: int) -> list[Member]:
        t = self._resolve(type_id)
        if t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"type {type_id} is not a struct or union")
        out = []
        for i in range(t.vlen):
            name_off, mtype, offset = struct.unpack_from("<III", self._blob, t.trailer + 12 * i)
            bit_offset = offset & 0xFFFFFF if t.kind_flag else offset
            out.append(Member(self._string(name_off) if name_off else "", mtype, bit_offset))
        return out

    def _resolve(self, type_id: int) -> _Type:
        """Follow typedefs and qualifiers to the type they name."""
        for _ in range(64):
            if type_id <= 0 or type_id >= len(self._types):
                raise BtfError(f"type id {type_id} out of range")
            t = self._types[type_id]
            assert t is not None
            if t.kind not in _MODIFIERS:
                return t
            type_id = t.size_or_type
        raise BtfError("typedef chain too long")

    def _find(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of member `name`, searching anonymous members too."""
        for m in self.members(type_id):
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name and self._resolve(m.type_id).kind in (KIND_STRUCT, KIND_UNION):
                found = self._find(m.type_id, name)
                if found is not None:
                    return m.bit_offset + found[0], found[1]
        return None

    def offsetof(self, struct_name: str, member_path: str) -> int:
        """Byte offset of `member_path` ("a" or "a.b" through embedded structs)."""
        type_id = self.struct_id(struct_name)
        total_bits = 0
        for part in member_path.split("."):
            found = self._find(type_id, part)
            if found is None:
                raise BtfError(f"struct {struct_name} has no member {member_path!r}")
            bits, type_id = found
            total_bits += bits
        if total_bits % 8:
            raise BtfError(f"{struct_name}.{member_path} is a bitfield")
        return total_bits // 8

    def enumerators(self, enum_name: str) -> dict[str, int]:
        """The names and values of `enum enum_name`."""
        try:
            t = self._types[self._enums[enum_name]]
        except KeyError:
            raise BtfError(f"no enum named {enum_name!r} in BTF") from None
        assert t is not None
        out = {}
        signed = t.kind_flag  # for an enum, the kind flag says its values are signed
        for i in range(t.vlen):
            if t.kind == KIND_ENUM:
                name_off, value = struct.unpack_from("<Ii" if signed else "<II", self._blob, t.trailer + 8 * i)
            else:
                name_off, lo, hi = struct.unpack_from("<III", self._blob, t.trailer + 12 * i)
                value = (hi << 32) | lo
                if signed and value >= 1 << 63:
                    value -= 1 << 64
            out[self._string(name_off)] = value
        return out

    def sizeof(self, struct_name: str) -> int:
        return self._resolve(self.struct_id(struct_name)).size_or_type
