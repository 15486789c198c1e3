"""The compiled wire decoder (tracer/kernel/_fastwire.c) against the Python one.

The Python decoder (wire.decode_at_python) is the reference: on any bytes the
compiled one must return an equal event of the same class, sharing the same
cached objects, or raise the same error. Records are built from the layouts in
wire.LAYOUTS with every field drawn at random (flags, lengths that fit and
lengths that do not, bodies of any size), so the two meet far more inputs than
the kernel sends. tests/test_wire_decode.py runs all its own tests with each.
"""

from __future__ import annotations

import gc
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctrace import PURE_PYTHON_ENV
from proctrace.kernel import wire
from proctrace.kernel.ringbuf import BUSY_BIT, DISCARD_BIT, HEADER_SIZE, walk_records
from proctrace.model.events import Event

from tests.environment import requires
from tests.leaks import bytes_kept

FIXED_KINDS = {
    wire.KIND_FORK: "pt_fork",
    wire.KIND_EXEC: "pt_exec",
    wire.KIND_EXIT: "pt_exit",
    wire.KIND_SIGNAL: "pt_signal",
    wire.KIND_REAP: "pt_reap",
    wire.KIND_CRED: "pt_cred_change",
    wire.KIND_CGROUP: "pt_cgroup",
}


@pytest.fixture(scope="module")
def compiled():
    requires(wire.COMPILED is not None, f"the compiled wire decoder: {wire.DECODER}")
    return wire.COMPILED


def outcome(decode, data: bytes, offset: int, size: int) -> tuple[str, object]:
    """What a decoder makes of the record: ("event", event) or ("error", its class and message)."""
    try:
        return "event", decode(data, offset, size)
    except Exception as exc:  # the comparison is the point: any exception, of either decoder
        return "error", (type(exc), str(exc))


def assert_same(compiled, data: bytes, offset: int = 0, size: int | None = None) -> None:
    size = len(data) - offset if size is None else size
    expected = outcome(wire.decode_at_python, data, offset, size)
    got = outcome(compiled.decode_at, data, offset, size)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "event":
        assert type(got[1]) is type(expected[1])
        assert got[1] == expected[1]
    else:
        assert got[1] == expected[1]


def layout_values(name: str) -> st.SearchStrategy[bytes]:
    """A struct of wire.LAYOUTS[name] with every field random: random bytes of its size."""
    size = struct.calcsize(wire.LAYOUTS[name][0])
    return st.binary(min_size=size, max_size=size)


def u(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


@st.composite
def records(draw) -> bytes:
    """A header of a known kind (or any kind), its payload, and a tail: an exec's
    lengths mostly describe the tail it has, sometimes not."""
    kind = draw(st.sampled_from([*FIXED_KINDS, 0, 8, 0x101]))
    head = bytearray(draw(layout_values("pt_header")))
    struct.pack_into("<I", head, wire.HEADER_KIND_OFFSET, kind)
    body = bytearray(draw(layout_values(FIXED_KINDS.get(kind, "pt_reap"))))
    tail = b""
    if kind == wire.KIND_EXEC:
        parts = [draw(st.binary(max_size=40)) for _ in range(4)]  # filename, argv, env, cwd
        args = draw(st.lists(st.binary(max_size=8).map(lambda b: b.replace(b"\0", b"")), max_size=4))
        parts[1] = b"".join(arg + b"\0" for arg in args) + draw(st.sampled_from([b"", b"cut", parts[1]]))
        parts[3] = draw(st.sampled_from([b"", b"tmp\0", b"b\0a\0", parts[3]]))
        parts[2] = draw(st.sampled_from([b"", b"A=1\0B\0", parts[2]]))
        tail = b"".join(parts)
        lengths = [len(parts[0]), len(parts[1]), len(parts[3]), len(parts[2])]
        if draw(st.integers(0, 9)) == 0:
            lengths = [draw(u(32)) if draw(st.booleans()) else n for n in lengths]
        struct.pack_into("<IIII", body, 12, *lengths)  # filename_len, argv_len, cwd_len, env_len
        flags = draw(u(14)) | (wire.EXEC_CONTEXT if draw(st.booleans()) else 0)
        struct.pack_into("<I", body, 8, flags)
        if draw(st.booleans()):
            struct.pack_into("<I", body, 28, 0)  # no controlling terminal
    elif kind == wire.KIND_CGROUP:
        path = draw(st.binary(max_size=24))
        struct.pack_into("<I", body, 12, len(path) if draw(st.booleans()) else draw(u(32)))
        struct.pack_into("<I", body, 8, draw(st.integers(0, 4)))
        tail = path
    elif kind == wire.KIND_EXIT:
        body[16] = draw(st.integers(0, 3))  # group_dead
        body[17] = draw(st.integers(0, 3))  # has_usage
        body[18] = draw(st.integers(0, 3))  # death
    raw = bytes(head + body + tail)
    cut = draw(st.integers(0, 9))
    if cut == 0:  # short of its own kind's size, or of its tail
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw + draw(st.binary(max_size=16))


@settings(max_examples=2000, deadline=None)
@given(records())
def test_every_record_decodes_as_the_python_decoder_decodes_it(compiled, raw: bytes) -> None:
    assert_same(compiled, raw)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400), st.integers(-8, 420), st.integers(-8, 420))
def test_any_bytes_at_any_offset_and_size_give_the_same_event_or_error(compiled, data, offset, size) -> None:
    assert_same(compiled, data, offset, size)


@settings(max_examples=500, deadline=None)
@given(records(), st.binary(max_size=40), st.binary(max_size=40))
def test_a_record_in_place_decodes_as_the_record_alone(compiled, raw: bytes, before: bytes, after: bytes) -> None:
    assert_same(compiled, before + raw + after, len(before), len(raw))


def test_shared_objects_come_from_the_same_caches(compiled) -> None:
    """Both decoders hand out the same command name, status and credential objects."""
    from tests.test_wire_decode import exec_event, exit_event

    raw = exec_event(b"/bin/x", b"x\0", flags=wire.EXEC_CONTEXT | wire.EXEC_CRED_BEFORE, cwd_area=b"tmp\0")
    a, b = wire.decode_at_python(raw, 0, len(raw)), compiled.decode_at(raw, 0, len(raw))
    assert a.comm is b.comm
    assert a.context.creds is b.context.creds and a.context.creds_before is b.context.creds_before
    assert a.context.cwd is b.context.cwd == b"/tmp"
    raw = exit_event(0x0F00, group_dead=1)
    assert wire.decode_at_python(raw, 0, len(raw)).status is compiled.decode_at(raw, 0, len(raw)).status


def test_recurring_numbers_shared_between_records_keep_their_values(compiled) -> None:
    """The compiled decoder hands out one int for a pid that recurs (its
    table of recurring numbers); pids that meet in the table push each other
    out and never stand in for each other."""
    from tests.test_wire_decode import fork_event, reap_event

    pids = [*range(300, 300 + 3 * 4096, 3), 2**32 - 1]
    for _ in range(2):
        for pid in pids:
            raw = fork_event(0x11, child_pid=pid, child_tgid=pid ^ 1, child_ppid=(pid + 7) & 0xFFFFFFFF)
            ev = compiled.decode_at(raw, 0, len(raw))
            assert (ev.child_pid, ev.child_tgid, ev.child_ppid) == (pid, pid ^ 1, (pid + 7) & 0xFFFFFFFF)
            raw = reap_event(pid, 0)
            assert compiled.decode_at(raw, 0, len(raw)).reaped_pid == pid
    first, second = (compiled.decode_at(r, 0, len(r)) for r in (reap_event(43210, 0), reap_event(43210, 0)))
    assert first.reaped_pid is second.reaped_pid == 43210


def test_command_names_that_meet_in_the_compiled_table_never_stand_in_for_each_other(compiled) -> None:
    """The compiled decoder looks command names up by their raw bytes first."""
    from tests.test_wire_decode import fmt, header

    names = [f"cmd-{i}".encode() for i in range(1000)] + [f"worker-pool-{i}".encode() for i in range(1000)]
    names += [b"x" * 14 + bytes([c]) for c in range(1, 256)] + [b"", b"a\0b", b"\xff\xfe"]
    for _ in range(2):
        for name in names:
            raw = header(wire.KIND_REAP, comm=name) + struct.pack(fmt("pt_reap"), 1, 0, 0)
            assert compiled.decode_at(raw, 0, len(raw)).comm == wire.decode_at_python(raw, 0, len(raw)).comm


def test_an_execs_short_words_are_shared_by_content_and_never_stand_in_for_each_other(compiled) -> None:
    """The compiled decoder hands out one bytes object for a file name or an
    argument that recurs (its table of short strings); strings that meet in
    the table, or differ only in length or in one byte, keep their own values."""
    from tests.test_wire_decode import exec_event

    words = [f"arg-{i}".encode() for i in range(2000)] + [b"x" * n for n in range(1, 70)]
    words += [b"same-prefix-" + bytes([c]) for c in range(1, 256)] + [b"ab", b"ab\xff", b"\xfe" * 64, b"\xfe" * 65]
    for _ in range(2):
        for word in words:
            raw = exec_event(b"/bin/" + word, word + b"\0" + word[::-1] + b"\0")
            ev = compiled.decode_at(raw, 0, len(raw))
            assert (ev.filename, ev.argv) == (b"/bin/" + word, [word, word[::-1]])
    first, second = (compiled.decode_at(r, 0, len(r)) for r in [exec_event(b"/bin/cc", b"cc\0-c\0")] * 2)
    assert first.filename is second.filename and first.argv[1] is second.argv[1]
    assert first.argv is not second.argv  # a list may be changed: each event has its own


def test_every_slot_of_a_compiled_record_is_set(compiled) -> None:
    """No slot is left empty (reading it would raise AttributeError)."""
    from tests.test_wire_decode import exec_event, exit_event, fork_event, reap_event, signal_event

    for raw in (fork_event(0), exec_event(b"/a", b"a\0", flags=wire.EXEC_CONTEXT), exit_event(9, group_dead=1),
                exit_event(9, group_dead=1, has_usage=3), reap_event(7, 0), signal_event()):  # fmt: skip
        ev = compiled.decode_at(raw, 0, len(raw))
        objects = [ev, *(v for v in (getattr(ev, "context", None), getattr(ev, "usage", None)) if v is not None)]
        for obj in objects:
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    getattr(obj, name)


def test_the_compiled_records_are_left_to_reference_counting(compiled) -> None:
    """Out of the cyclic collector's scans, and freed when the last reference goes."""
    from tests.test_wire_decode import exec_event

    raw = exec_event(b"/a", b"a\0b\0", flags=wire.EXEC_CONTEXT)
    ev = compiled.decode_at(raw, 0, len(raw))
    assert not gc.is_tracked(ev) and not gc.is_tracked(ev.argv)
    assert gc.is_tracked(wire.decode_at_python(raw, 0, len(raw)))


def test_decoding_and_rejecting_leak_nothing(compiled) -> None:
    from tests.test_wire_decode import exec_event, exit_event, fork_event

    good = [fork_event(0), exec_event(b"/a", b"a\0", flags=wire.EXEC_CONTEXT | wire.EXEC_ENV, env_area=b"A=1\0"),
            exit_event(9, group_dead=1, has_usage=3, death=2, killer=(7, b"kill"))]  # fmt: skip
    bad = [fork_event(0)[:70], exec_event(b"/a", b"a\0", alen=1 << 30), b"\0" * 64]

    def work() -> None:
        for _ in range(2000):
            for raw in good:
                compiled.decode_at(raw, 0, len(raw))
            for raw in bad:
                with pytest.raises(wire.DecodeError):
                    compiled.decode_at(raw, 0, len(raw))

    grown = bytes_kept(work)
    assert grown < 64 * 1024, f"{grown} bytes kept by 30,000 decodes"


def test_it_was_compiled_from_the_layouts_wire_py_decodes(compiled) -> None:
    for name, size in compiled.layout().items():
        extra = 0 if name in wire.HEADERLESS else wire.HEADER_SIZE
        assert size == struct.calcsize(wire.LAYOUTS[name][0]) + extra, name


# --- the ring walk -----------------------------------------------------------------------


@st.composite
def ring_data(draw) -> bytes:
    """Ring records as the kernel lays them out: some discarded, some not events,
    maybe one still busy, each padded to 8 bytes."""
    out = b""
    for raw in draw(st.lists(records() | st.binary(max_size=30), max_size=8)):
        flags = draw(st.sampled_from([0, 0, 0, DISCARD_BIT, BUSY_BIT]))
        record = struct.pack("<II", len(raw) | flags, 0) + raw
        out += record + b"\0" * (-len(record) % 8)
    return out


@settings(max_examples=400, deadline=None)
@given(ring_data())
def test_the_compiled_ring_walk_walks_as_the_python_one(compiled, chunk: bytes) -> None:
    py_out: list[Event] = []
    py_errors: list[ValueError] = []
    c_out: list[Event] = []
    c_errors: list[ValueError] = []
    expected = walk_records(wire.decode_at_python, chunk, py_out, py_errors)
    assert compiled.walk_ring(chunk, c_out, c_errors) == expected
    assert c_out == py_out
    assert [(type(e), str(e)) for e in c_errors] == [(type(e), str(e)) for e in py_errors]


def test_the_ring_walk_stops_at_a_busy_record_and_says_where(compiled) -> None:
    from tests.test_wire_decode import fork_event

    raw = fork_event(0)
    one = struct.pack("<II", len(raw), 0) + raw
    chunk = one + struct.pack("<II", len(raw) | BUSY_BIT, 0) + raw
    out: list[Event] = []
    assert compiled.walk_ring(chunk, out, []) == (len(one), 1, True)
    assert len(out) == 1 and HEADER_SIZE == 8


def test_the_session_decodes_with_the_compiled_decoder(compiled) -> None:
    """What live sessions use (probe.py reads wire.walk_ring and wire.decode_at)."""
    assert wire.walk_ring is compiled.walk_ring and wire.decode_at is compiled.decode_at
    assert wire.DECODER == "compiled"


def test_the_python_decoder_can_be_chosen(monkeypatch) -> None:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    module, why = wire._load_compiled()
    assert module is None and PURE_PYTHON_ENV in why


def test_a_record_class_with_a_field_the_compiled_decoder_does_not_fill_keeps_python(compiled, monkeypatch) -> None:
    """A field added to a record in Python and not in C must not be left unset."""
    real = compiled.fields

    def fewer() -> dict[str, tuple[str, ...]]:
        fields = dict(real())
        fields["ForkEvent"] = tuple(name for name in fields["ForkEvent"] if name != "clone_flags")
        return fields

    monkeypatch.setattr(compiled, "fields", fewer)
    module, why = wire._load_compiled()
    assert module is None and "clone_flags" in why
    wire._load_compiled()  # configured again with the real classes
