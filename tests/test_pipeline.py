"""tracer/session/pipeline.py: each batch is redacted and filtered once and
handed to every sink; lost reports, status and close reach every sink too."""

from __future__ import annotations

from proctrace.model.context import ProcessContext
from proctrace.model.events import LIFECYCLE, SIGNALS, Event, ExecEvent
from proctrace.model.filters import EventFilter, FilterSpec
from proctrace.session.options import RedactionOptions
from proctrace.session.pipeline import Pipeline, session_redactor

from tests.synthetic import MS, SHELL, SHELL_START, execve, exit_, fork


class NotingSink:
    def __init__(self, shows_status: bool = False) -> None:
        self.shows_status = shows_status
        self.written: list[list[Event]] = []
        self.lost_reports: list[tuple[int, int, int, str]] = []
        self.statuses: list[str] = []
        self.closed = False

    def write(self, events: list[Event]) -> None:
        self.written.append(events)

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        self.lost_reports.append((ts_ns, new, total, event_class))

    def status(self, text: str) -> None:
        self.statuses.append(text)

    def close(self) -> None:
        self.closed = True


class CountingFilter(EventFilter):
    def __init__(self, spec: FilterSpec) -> None:
        super().__init__(spec)
        self.calls = 0

    def __call__(self, events: list[Event]) -> list[Event]:
        self.calls += 1
        return super().__call__(events)


BATCH: list[Event] = [
    fork(10 * MS, 200),
    execve(11 * MS, 200, 10 * MS, [b"make"]),
    exit_(12 * MS, 200, 10 * MS, comm=b"make"),
]


def test_each_batch_is_filtered_once_whatever_the_number_of_sinks() -> None:
    event_filter = CountingFilter(FilterSpec(kinds=frozenset({"exec", "exit"})))
    sinks = [NotingSink(), NotingSink(), NotingSink()]
    pipeline = Pipeline(event_filter, sinks)
    pipeline.write(BATCH)
    pipeline.write(BATCH)
    assert event_filter.calls == 2


def test_every_sink_gets_the_same_filtered_batch() -> None:
    expected = EventFilter(FilterSpec(kinds=frozenset({"exec"})))(BATCH)
    sinks = [NotingSink(), NotingSink()]
    pipeline = Pipeline(EventFilter(FilterSpec(kinds=frozenset({"exec"}))), sinks)
    pipeline.write(BATCH)
    assert [sink.written for sink in sinks] == [[expected], [expected]]
    assert pipeline.shown == len(expected) == 1


def test_without_a_filter_the_batch_goes_through_untouched_and_unfiltered() -> None:
    event_filter = CountingFilter(FilterSpec())
    sink = NotingSink()
    pipeline = Pipeline(event_filter, [sink])
    pipeline.write(BATCH)
    assert event_filter.calls == 0
    assert sink.written[0] is BATCH
    assert pipeline.shown == len(BATCH)


def test_a_batch_the_filter_empties_reaches_no_sink() -> None:
    sink = NotingSink()
    pipeline = Pipeline(EventFilter(FilterSpec(pids=(SHELL + 1000,))), [sink])
    pipeline.write(BATCH)
    assert sink.written == []
    assert pipeline.shown == 0


def test_lost_reports_reach_every_sink_and_the_total_is_kept() -> None:
    sinks = [NotingSink(), NotingSink()]
    pipeline = Pipeline(EventFilter(FilterSpec()), sinks)
    pipeline.lost(SHELL_START, 3, 3)
    pipeline.lost(SHELL_START + MS, 2, 5)
    pipeline.lost(SHELL_START + 2 * MS, 9, 9, SIGNALS)
    assert pipeline.lost_total == 14
    assert pipeline.lost_by_class == {LIFECYCLE: 5, SIGNALS: 9}
    for sink in sinks:
        assert sink.lost_reports == [
            (SHELL_START, 3, 3, LIFECYCLE),
            (SHELL_START + MS, 2, 5, LIFECYCLE),
            (SHELL_START + 2 * MS, 9, 9, SIGNALS),
        ]


def test_status_and_close_reach_every_sink() -> None:
    sinks = [NotingSink(), NotingSink()]
    pipeline = Pipeline(EventFilter(FilterSpec()), sinks)
    pipeline.status("3 events/s")
    pipeline.close()
    assert [(sink.statuses, sink.closed) for sink in sinks] == [(["3 events/s"], True)] * 2


def test_status_is_shown_when_any_sink_shows_it() -> None:
    event_filter = EventFilter(FilterSpec())
    assert Pipeline(event_filter, [NotingSink(), NotingSink(shows_status=True)]).shows_status
    assert not Pipeline(event_filter, [NotingSink(), NotingSink()]).shows_status
    assert not Pipeline(event_filter, []).shows_status


class SnoopingFilter(EventFilter):
    """A filter that notes the argv of every exec it is shown."""

    def __init__(self, spec: FilterSpec) -> None:
        super().__init__(spec)
        self.seen: list[list[bytes]] = []

    def __call__(self, events: list[Event]) -> list[Event]:
        self.seen += [ev.argv for ev in events if isinstance(ev, ExecEvent)]
        return super().__call__(events)


def secret_exec() -> ExecEvent:
    ev = execve(11 * MS, 200, 10 * MS, [b"deploy", b"--token=tok-1", b"-v"])
    ev.context = ProcessContext(cwd=b"/srv", env={b"AWS_SECRET_ACCESS_KEY": b"key-2", b"HOME": b"/root"})
    return ev


def test_secrets_are_redacted_before_the_filter_and_every_sink() -> None:
    sinks = [NotingSink(), NotingSink()]
    event_filter = SnoopingFilter(FilterSpec(kinds=frozenset({"exec"})))
    pipeline = Pipeline(event_filter, sinks, session_redactor(RedactionOptions()))
    pipeline.write([fork(10 * MS, 200), secret_exec()])
    assert event_filter.seen == [[b"deploy", b"--token=<redacted>", b"-v"]]
    for sink in sinks:
        ((ev,),) = sink.written
        assert ev.argv == [b"deploy", b"--token=<redacted>", b"-v"]
        assert ev.context.env == {b"AWS_SECRET_ACCESS_KEY": b"<redacted>", b"HOME": b"/root"}


def test_a_pipeline_made_without_a_redactor_redacts_by_the_default_rules() -> None:
    sink = NotingSink()
    Pipeline(EventFilter(FilterSpec()), [sink]).write([secret_exec()])
    assert sink.written[0][0].argv == [b"deploy", b"--token=<redacted>", b"-v"]


def test_no_redact_and_an_allow_list_select_without_redacting() -> None:
    sink = NotingSink()
    options = RedactionOptions(enabled=False, env_allow=("AWS_SECRET_ACCESS_KEY",))
    Pipeline(EventFilter(FilterSpec()), [sink], session_redactor(options)).write([secret_exec()])
    ((ev,),) = sink.written
    assert ev.argv == [b"deploy", b"--token=tok-1", b"-v"]
    assert ev.context.env == {b"AWS_SECRET_ACCESS_KEY": b"key-2"}
