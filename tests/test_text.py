"""tracer/formats/text.py: one escaping notation for everything shown to people,
in its shell form (what processes chose, in every output) and its message form
(proctrace's own messages); shell quoting, cuts, durations and styles."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proctrace.formats.text import (
    STYLES,
    ansi_codes,
    bmp_only,
    comm_text,
    cut,
    cut_marker,
    escape_bytes,
    escape_text,
    format_duration,
    quote_prefix,
    safe,
    shell_quote,
)

from tests.environment import requires

# ---------------------------------------------------------------------------
# The shell form: what processes chose


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"\x1b[2J", "\\x1b[2J"),
        (b"\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        (b"[red]x[/]", "[red]x[/]"),
        (b"[link=http://x]y", "[link=http://x]y"),
        (b"a\rb", "a\\rb"),
        (b"a\nb", "a\\nb"),
        (b"a\tb", "a\\tb"),
        (b"\x00\x01\x7f", "\\x00\\x01\\x7f"),
        (b"back\\slash", "back\\\\slash"),
        (b"\xff\xfe", "\\xff\\xfe"),
        (b"caf\xc3", "caf\\xc3"),  # a UTF-8 sequence cut short
        (b"\xed\xa0\x80", "\\xed\\xa0\\x80"),  # an encoded surrogate is not UTF-8
        (b"\x9b2J", "\\x9b2J"),  # the 8-bit CSI byte, not UTF-8 on its own
        ("\u0085\u009b".encode(), "\\u0085\\u009b"),  # C1 controls as code points
        ("\u202eevil".encode(), "\\u202eevil"),
        ("a\u200bb\ufeff".encode(), "a\\u200bb\\ufeff"),  # zero-width space, BOM
        ("x\u2028y\u00a0z".encode(), "x\\u2028y\\u00a0z"),  # line separator, no-break space
        ("\U000e0001".encode(), "\\U000e0001"),  # a tag character (format, outside the BMP)
        ("é\x1b".encode(), "é\\x1b"),
        ("héllo wörld 日本 🙂".encode(), "héllo wörld 日本 🙂"),
        (b"", ""),
        (b"plain ascii", "plain ascii"),
    ],
)
def test_escape_bytes_shows_hostile_bytes_as_visible_escapes(raw: bytes, shown: str):
    assert escape_bytes(raw) == shown


def unescape(text: str) -> bytes:
    """The inverse of escape_bytes: a test that the escaping loses nothing."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        tag = text[i + 1]
        if tag in "\\ntr":
            out += {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r"}[tag]
            i += 2
        elif tag == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif tag == "u":
            out += chr(int(text[i + 2 : i + 6], 16)).encode()
            i += 6
        else:
            assert tag == "U"
            out += chr(int(text[i + 2 : i + 10], 16)).encode()
            i += 10
    return bytes(out)


utf8_soup = st.lists(
    st.one_of(st.binary(max_size=8), st.text(max_size=8).map(lambda s: s.encode("utf-8", "surrogatepass")))
).map(b"".join)


@given(utf8_soup)
def test_escaped_text_is_all_printable_and_loses_nothing(raw: bytes):
    shown = escape_bytes(raw)
    assert shown.isprintable()
    assert unescape(shown) == raw


def test_every_single_byte_is_escaped_safely():
    for byte in range(256):
        shown = escape_bytes(bytes([byte]))
        assert shown.isprintable()
        assert unescape(shown) == bytes([byte])


def test_escape_text_of_decoded_bytes_is_escape_bytes():
    raw = b"a\xff\x1b\\ \xe2\x80\xae\xf0\x9f\x99\x82"
    assert escape_text(raw.decode("utf-8", "surrogateescape")) == escape_bytes(raw)


def test_an_unknown_comm_is_a_question_mark_and_a_known_one_is_escaped():
    assert comm_text(b"") == "?"
    assert comm_text(b"\x1b[2J") == "\\x1b[2J"


# ---------------------------------------------------------------------------
# The message form: proctrace's own messages


def test_plain_text_is_unchanged():
    assert safe("/tmp/my file (1).rec") == "/tmp/my file (1).rec"


def test_terminal_escapes_and_line_breaks_become_visible():
    assert safe("a\x1b[2Jb\rc\nd\x07") == "a\\x1b[2Jb\\x0dc\\x0ad\\x07"


def test_bidi_controls_and_lone_surrogates_are_escaped():
    assert safe("x\u202ey") == "x\\u202ey"
    assert safe("bad\udcff") == "bad\\udcff"


@given(st.text())
def test_output_is_always_printable(text):
    assert safe(text).isprintable()


@pytest.mark.parametrize(
    ("text", "shell", "message"),
    [
        ("a\nb", "a\\nb", "a\\x0ab"),  # bash names the line break; messages number it
        ("back\\slash", "back\\\\slash", "back\\slash"),  # only the shell form is read back by bash
        ("\udcff", "\\xff", "\\udcff"),  # an undecodable byte: the byte, or the lone surrogate
        ("\u0085", "\\u0085", "\\x85"),  # in $'...' \\x85 would be a byte, not U+0085
        ("\u202e", "\\u202e", "\\u202e"),
        ("\U000e0001", "\\U000e0001", "\\U000e0001"),
    ],
)
def test_the_two_forms_differ_only_where_their_readers_do(text: str, shell: str, message: str):
    assert escape_text(text) == shell
    assert safe(text) == message


# ---------------------------------------------------------------------------
# For JSON viewers that reject surrogate pairs


def test_bmp_only_escapes_printable_characters_beyond_the_bmp_in_the_same_notation():
    assert bmp_only(escape_bytes("x🙂é日".encode())) == "x\\U0001f642é日"
    assert bmp_only(shell_quote("🙂 a".encode())) == "'\\U0001f642 a'"


@given(st.binary(max_size=24))
def test_bmp_only_text_has_no_character_beyond_the_bmp_and_stays_printable(raw: bytes):
    shown = bmp_only(escape_bytes(raw))
    assert shown.isprintable()
    assert all(ord(c) <= 0xFFFF for c in shown)


# ---------------------------------------------------------------------------
# Shell quoting


# Shell quoting


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        (b"", "''"),
        (b"-l", "-l"),
        (b"--color=auto", "--color=auto"),
        (b"/usr/bin/x", "/usr/bin/x"),
        (b"my file", "'my file'"),
        (b"it's", "'it'\"'\"'s'"),
        (b"$HOME", "'$HOME'"),
        (b"a\nb", "$'a\\nb'"),
        (b"it's\n", "$'it\\'s\\n'"),
        (b"a\\b", "$'a\\\\b'"),
        ("é".encode(), "'é'"),
    ],
)
def test_shell_quote_makes_spaces_and_quotes_visible(raw: bytes, quoted: str):
    assert shell_quote(raw) == quoted


def test_shell_quoted_arguments_paste_back_into_bash_as_the_same_bytes():
    requires(shutil.which("bash") is not None, "needs bash")
    samples = [b"", b"it's", b"a b", b"a\nb\tc\rd", b"\x1b[2J", b"\xff\xfe", "\u202eé日".encode(), b"\\x41", b"$(x)"]
    rng = random.Random(7)  # and arbitrary bytes (an argument cannot hold a NUL)
    samples += [bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 24))) for _ in range(200)]
    script = "".join(f"printf '%s\\0' {shell_quote(raw)}; " for raw in samples)
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    ).stdout
    assert out.split(b"\0")[:-1] == samples


def test_quote_prefix_fits_its_budget_and_never_splits_a_utf8_character():
    raw = "日本語".encode() * 10
    quoted, shown = quote_prefix(raw, 10)
    assert len(quoted) <= 10
    assert shown % 3 == 0 and shown > 0
    assert quoted == shell_quote(raw[:shown])


# ---------------------------------------------------------------------------
# Cuts


def test_cut_keeps_text_that_fits_and_ends_cut_text_in_an_ellipsis():
    assert cut("abcdef", 6) == "abcdef"
    assert cut("abcdefg", 6) == "abcde…"


def test_cut_with_whole_escapes_leaves_no_backslash_before_the_ellipsis():
    assert cut("$'ab\\\\x'", 6) == "$'ab\\…"  # half an escaped backslash
    assert cut("$'ab\\\\x'", 6, whole_escapes=True) == "$'ab…"


def test_cut_marker_counts_the_hidden_bytes_and_arguments():
    assert cut_marker(b"x" * 10, 4, []) == "…(+6 bytes)"
    assert cut_marker(b"x" * 10, 4, [b"ab", b"c"]) == "…(+9 bytes, 2 more args)"


# ---------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (-5, "0ns"),
        (0, "0ns"),
        (850, "850ns"),
        (12_345, "12.3µs"),
        (999_949, "999.9µs"),
        (999_950, "1.0ms"),
        (1_234_567, "1.2ms"),
        (999_999_999, "1.00s"),
        (3_400_000_000, "3.40s"),
        (59_994_999_999, "59.99s"),
        (59_995_000_000, "1m00s"),
        (125_000_000_000, "2m05s"),
        (3_599_600_000_000, "1h00m"),
        ((4 * 3600 + 7 * 60) * 1_000_000_000, "4h07m"),
        ((3 * 86400 + 2 * 3600) * 1_000_000_000, "3d02h"),
    ],
)
def test_format_duration_is_short_and_human(ns: int, text: str):
    assert format_duration(ns) == text


# ---------------------------------------------------------------------------
# Styles


def test_every_role_has_codes_and_only_the_unstyled_role_has_none():
    codes = ansi_codes()
    assert set(codes) == set(STYLES)
    for role, (on, off) in codes.items():
        assert bool(on) == bool(off) == bool(STYLES[role])
        assert re.fullmatch(r"(\x1b\[[0-9;]*m)*", on + off)
