"""The compiled stream renderer (tracer/formats/_faststream.c) against the Python one.

StreamRenderer.python_lines is the reference: for any batch the compiled
renderer must give the same lines, in colour and without, whether an event's
words were already in the caches or not; it renders only the common events
itself and hands the rest to the Python renderer. tests/test_stream.py runs all
its own tests with each renderer.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctrace.formats import stream
from proctrace.formats.stream import StreamRenderer
from proctrace.formats.text import DETAIL_MAX, format_duration
from proctrace.model.clock import Clock
from proctrace.model.context import Credentials, ProcessContext
from proctrace.model.events import (
    CLONE_PARENT,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    ReapEvent,
    SignalEvent,
    WaitStatus,
)

from tests.environment import requires
from tests.leaks import bytes_kept

CLOCK = Clock(1_700_000_000 * 1_000_000_000 - 100_000_000_000)
ROOT = Credentials(0, 0, 0, 0, 0, 0, 0, 0, 0x1FF)
USER = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)


@pytest.fixture(scope="module", autouse=True)
def compiled():
    requires(stream._faststream is not None, "the compiled stream renderer (tracer/formats/_faststream.c)")
    return stream._faststream


def python_renderer(color: bool) -> StreamRenderer:
    renderer = StreamRenderer(CLOCK, color=color)
    renderer._compiled = None
    return renderer


pids = st.integers(1, 4_194_304)
names = st.sampled_from([b"bash", b"make", b"cc1", b"ptbench-true", b"\x1b[31mEVIL", b"\xff\xfe", b"a b", b""])
args = st.sampled_from([b"-l", b"my file", b"it's", b"", b"\x1b]0;t\x07", "\u202eevil".encode(), b"x" * 300])
statuses = st.sampled_from([0, 1 << 8, 2 << 8, 255 << 8, 9, 15, 11 | 0x80, 0x7F]).map(WaitStatus)


@st.composite
def header(draw) -> dict:
    tgid = draw(pids)
    threaded = draw(st.integers(0, 5)) == 0
    return {
        "ts_ns": draw(st.integers(100_000_000_000, 100_000_000_000 + 5_000_000_000)),
        "pid": draw(pids) if threaded else tgid,
        "tgid": tgid,
        "ppid": draw(st.sampled_from([1, 1000, 4242])),
        "uid": 0,
        "comm": draw(names),
        "start_ns": draw(st.sampled_from([0, 99_000_000_000, 100_000_000_000])),
        "cpu": 0,
    }


@st.composite
def forks(draw) -> ForkEvent:
    common = draw(header())
    flags = draw(st.sampled_from([0, CLONE_THREAD | CLONE_VM, CLONE_VFORK | CLONE_VM, CLONE_PARENT]))
    child_ppid = draw(st.sampled_from([common["tgid"], 1]))
    return ForkEvent(**common, child_pid=draw(pids), child_tgid=draw(pids), child_ppid=child_ppid, clone_flags=flags)


@st.composite
def contexts(draw) -> ProcessContext | None:
    if draw(st.booleans()):
        return None
    creds = draw(st.sampled_from([ROOT, USER]))
    before = draw(st.sampled_from([None, creds, ROOT, USER]))
    cgroup = draw(st.sampled_from([None, b"/", b"/system.slice/nginx.service", b"/docker/0123456789abcdef"]))
    return ProcessContext(cwd=b"/tmp", creds=creds, creds_before=before, cgroup=cgroup)


@st.composite
def execs(draw) -> ExecEvent:
    common = draw(header())
    argv = draw(st.lists(args, max_size=draw(st.sampled_from([3, 30]))))
    if draw(st.integers(0, 9)) == 0:
        argv = [b"y" * (DETAIL_MAX // 2)] * 3  # cut at DETAIL_MAX
    errno = draw(st.sampled_from([0, 0, 0, 2, 13]))
    return ExecEvent(
        **common,
        filename=draw(st.sampled_from([b"/usr/bin/ls", b"/tmp/\x1b]0;x\x07", b"/bin/true"])),
        argv=argv,
        argv_truncated=draw(st.integers(0, 5)) == 0,
        filename_truncated=draw(st.integers(0, 5)) == 0,
        argv_unreadable=draw(st.integers(0, 5)) == 0,
        errno=errno,
        old_pid=draw(st.sampled_from([common["pid"], common["pid"], 7])),
        path_search=errno != 0 and draw(st.booleans()),
        context=draw(contexts()) if errno == 0 else None,
    )


@st.composite
def exits(draw) -> ExitEvent:
    common = draw(header())
    ev = ExitEvent(
        **common,
        status=draw(statuses),
        process_exit=draw(st.booleans()),
        task_start_ns=draw(st.sampled_from([0, 99_500_000_000, 100_000_000_100])),
    )
    if draw(st.integers(0, 4)) == 0:
        ev.oom_killed = True
    if draw(st.integers(0, 4)) == 0:
        ev.killed_by_pid, ev.killed_by_comm = 4242, b"kill"
    return ev


@st.composite
def reaps(draw) -> ReapEvent:
    return ReapEvent(**draw(header()), reaped_pid=draw(pids), status=draw(statuses), autoreaped=draw(st.booleans()))


@st.composite
def signals(draw) -> SignalEvent:
    return SignalEvent(**draw(header()), signo=15, target_pid=draw(pids), target_comm=b"sleep", group=True)


events = st.one_of(forks(), execs(), exits(), reaps(), signals())


def both(color: bool) -> tuple[StreamRenderer, StreamRenderer]:
    compiled = StreamRenderer(CLOCK, color=color)
    assert compiled._compiled is not None
    return compiled, python_renderer(color)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(events, max_size=12), min_size=1, max_size=4), st.booleans())
def test_every_batch_renders_as_the_python_renderer_renders_it(batches: list[list[Event]], color: bool) -> None:
    compiled, reference = both(color)
    for batch in [*batches, *batches]:  # the second time round, every word is in the caches
        assert compiled.lines(batch) == reference.lines(batch)


def joined(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(events, max_size=12), min_size=1, max_size=4), st.booleans())
def test_every_batch_as_text_is_its_lines_each_ending_in_a_newline_in_utf8(
    batches: list[list[Event]], color: bool
) -> None:
    """text() (the stream's bytes) says what lines() says, compiled and in Python."""
    compiled, reference = both(color)
    python_text = python_renderer(color)
    for batch in [*batches, *batches]:  # each renderer sees each batch once a round (PATH misses are counted)
        expected = joined(reference.lines(batch))
        assert compiled.text(batch) == expected
        assert python_text.text(batch) == expected


def test_the_text_of_a_line_that_is_not_strict_utf8_follows_the_error_handler() -> None:
    """A line the Python renderer returns with a lone surrogate: encoded as the
    stream would encode it, or the same error."""

    class Surrogate(StreamRenderer):
        def python_lines(self, events: list[Event]) -> list[str]:
            if events and type(events[0]) is SignalEvent:
                return ["odd \udcff"]
            return super().python_lines(events)

    renderer = Surrogate(CLOCK, color=False)
    assert renderer._compiled is not None
    ts = 100_000_000_000
    batch = [SignalEvent(ts, 10, 10, 1, 0, b"sh", ts, 0, signo=15, target_pid=11),
             ReapEvent(ts, 10, 10, 1, 0, b"sh", ts, 0, 11, WaitStatus(0))]  # fmt: skip
    reap = renderer.lines(batch[1:])[0]
    assert renderer.text(batch, "surrogateescape") == b"odd \xff\n" + reap.encode() + b"\n"
    with pytest.raises(UnicodeEncodeError):
        renderer.text(batch, "strict")
    with pytest.raises(UnicodeEncodeError):
        "odd \udcff".encode("utf-8", "strict")


def test_a_storm_as_text_is_its_lines() -> None:
    """A batch larger than the first buffer, and the same buffer used again."""
    renderer = StreamRenderer(CLOCK, color=True)
    ts = 100_000_000_000
    batch: list[Event] = []
    for i in range(3000):
        batch += [ForkEvent(ts + i, 4000, 4000, 1, 0, b"storm", ts, 0, 5000 + i, 5000 + i, 4000),
                  ExitEvent(ts + i + 900_000, 5000 + i, 5000 + i, 4000, 0, b"true", ts + i, 1, WaitStatus(0),
                            process_exit=True, task_start_ns=ts + i)]  # fmt: skip
    expected = joined(renderer.lines(batch))
    assert len(expected) > 1 << 16
    assert renderer.text(batch) == expected
    assert renderer.text(batch[:2]) == joined(renderer.lines(batch[:2]))
    assert renderer.text([]) == b""


# Each unit's first value and the rounding edges around it (text.format_duration's rules).
DURATION_EDGES = [
    0, 999, 1_000, 999_949, 999_950, 1_000_000, 999_949_999, 999_950_000, 59_994_999_999, 59_995_000_000,
    3_599_499_999_999, 3_599_500_000_000, 86_369_999_999_999, 86_370_000_000_000, 2**63 - 1,
]  # fmt: skip


@pytest.mark.parametrize("edge", DURATION_EDGES)
def test_the_compiled_durations_are_text_format_durations_at_every_units_edges(compiled, edge: int) -> None:
    for ns in (edge - 1, edge, edge + 1):
        if ns < 2**63:
            assert compiled.format_duration(ns) == format_duration(ns), ns


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(-(10**6), 10**6), st.integers(0, 2**63 - 1)))
def test_the_compiled_durations_are_text_format_durations(ns: int) -> None:
    from proctrace.formats import _faststream

    assert _faststream.format_duration(ns) == format_duration(ns)


def test_a_storm_renders_as_the_python_renderer_renders_it() -> None:
    """A thousand processes as the bench's storm makes them, each line compared."""
    batch: list[Event] = []
    for i in range(1000):
        child, at = 5000 + i, 100_000_000_000 + i * 1_000_000
        batch += [
            ForkEvent(at, 4000, 4000, 1, 0, b"ptbench-storm", 90_000_000_000, 0, child, child, 4000),
            ExecEvent(at + 1, child, child, 4000, 0, b"ptbench-true", at, 1, b"/tmp/ptbench-true",
                      [b"ptbench-true"], context=ProcessContext(cwd=b"/", creds=ROOT, creds_before=ROOT,
                                                                cgroup=b"/user.slice")),
            ExitEvent(at + 900_000, child, child, 4000, 0, b"ptbench-true", at, 1, WaitStatus(0),
                      process_exit=True, task_start_ns=at),
            ReapEvent(at + 950_000, 4000, 4000, 1, 0, b"ptbench-storm", 90_000_000_000, 0, child, WaitStatus(0)),
        ]  # fmt: skip
    for color in (False, True):
        compiled, reference = both(color)
        for start in range(0, len(batch), 400):
            assert compiled.lines(batch[start : start + 400]) == reference.lines(batch[start : start + 400])


def test_the_common_events_are_rendered_without_the_python_renderer() -> None:
    """Once their words are cached, a fork, an exec, an exit and a reap take no Python rendering."""
    renderer = StreamRenderer(CLOCK, color=True)
    calls: list[str] = []
    reference = renderer.python_lines

    def counted(batch: list[Event]) -> list[str]:
        calls.extend(ev.kind for ev in batch)
        return reference(batch)

    renderer.python_lines = counted  # type: ignore[method-assign]
    renderer._compiled = renderer._compile()
    ts = 100_000_000_000
    batch = [
        ForkEvent(ts, 10, 10, 1, 0, b"sh", ts, 0, 11, 11, 10),
        ExecEvent(ts, 11, 11, 10, 0, b"true", ts, 0, b"/bin/true", [b"true"], old_pid=11),
        ExitEvent(ts + 5000, 11, 11, 10, 0, b"true", ts, 0, WaitStatus(0), process_exit=True),
        ReapEvent(ts + 6000, 10, 10, 1, 0, b"sh", ts, 0, 11, WaitStatus(0)),
    ]
    renderer.lines(batch)
    assert calls == ["exit"]  # the outcome's words, the first time: words.py says them
    calls.clear()
    renderer.lines(batch)
    assert calls == []


def test_the_time_column_follows_the_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = ReapEvent(100_000_000_000 + 5_000, 10, 10, 1, 0, b"sh", 1, 0, 11, WaitStatus(0))
    for zone, expected in (("UTC", "22:13:20.000005"), ("IST-5:30", "03:43:20.000005")):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        try:
            assert StreamRenderer(CLOCK, color=False).line(ev).startswith(expected)
        finally:
            monkeypatch.delenv("TZ")
            time.tzset()


def test_rendering_leaks_nothing() -> None:
    renderer = StreamRenderer(CLOCK, color=True)
    ts = 100_000_000_000
    batch = [
        ForkEvent(ts, 10, 10, 1, 0, b"sh", ts, 0, 11, 11, 10),
        ExecEvent(ts, 11, 11, 10, 0, b"true", ts, 0, b"/bin/true", [b"true", b"a b"], old_pid=11,
                  context=ProcessContext(creds=ROOT, creds_before=USER, cgroup=b"/x.service")),
        ExitEvent(ts + 5000, 11, 11, 10, 0, b"true", ts, 0, WaitStatus(0), process_exit=True),
        ReapEvent(ts + 6000, 10, 12, 1, 0, b"sh", ts, 0, 11, WaitStatus(9)),
        SignalEvent(ts, 10, 10, 1, 0, b"sh", ts, 0, signo=15, target_pid=11),
    ]  # fmt: skip

    def work() -> None:
        for _ in range(3000):
            renderer.lines(batch)
            renderer.text(batch)

    grown = bytes_kept(work)
    assert grown < 64 * 1024, f"{grown} bytes kept by 15,000 lines"


def test_a_width_or_pure_python_keeps_the_python_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StreamRenderer(CLOCK, color=False, width=80)._compiled is None
    monkeypatch.setattr(stream, "_faststream", None)
    assert StreamRenderer(CLOCK, color=False)._compiled is None
