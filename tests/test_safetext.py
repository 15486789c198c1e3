"""proctrace's own messages never pass control characters through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from proctrace.formats.text import safe


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
