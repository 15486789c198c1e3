"""tracer/formats/words.py: one fact, said one way, in every output.

The same session is shown by the stream, the timeline, the tree, the JSON
lines, the JSON timeline and the Chrome trace; each test checks that one fact
(an outcome, a core dump, a handler, a group-exit SIGKILL, a status's fields)
comes out of all of them alike."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from proctrace.formats import words
from proctrace.formats.chrome_trace import export_chrome_trace
from proctrace.formats.jsonl import event_json
from proctrace.formats.stream import StreamRenderer
from proctrace.formats.views import render_timeline, render_tree, timeline_json
from proctrace.formats.words import (
    HANDLER_NAMES,
    HANDLER_VALUES,
    RESULT_VALUES,
    capabilities_gained_words,
    delivered_title,
    delivered_words,
    group_exit_cause,
    group_of,
    group_words,
    handler_name,
    outcome,
    privilege_gain_words,
    result_name,
    result_words,
    sent_words,
    status_fields,
)
from proctrace.model.clock import Clock
from proctrace.model.context import ALL_CAPABILITIES, Credentials
from proctrace.model.events import Event, WaitStatus
from proctrace.model.process_table import ProcessTable

from tests.synthetic import (
    MS,
    SHELL,
    context,
    creds,
    deliver,
    execve,
    exit_,
    exited,
    fork,
    generate,
    killed,
    reap,
)

CLOCK = Clock(1_700_000_000 * 10**9)
T0 = 1_000 * MS
SIGKILL, SIGSEGV, SIGTERM, SIGUSR1 = 9, 11, 15, 10
HANDLER_ADDRESS = 0x55D0_1234

STATUSES = [exited(0), exited(3), killed(SIGTERM), WaitStatus(SIGSEGV | 0x80), killed(SIGKILL)]


def ended(status: WaitStatus, pid: int = 200) -> list[Event]:
    """sh forks `pid`, which execs true and ends with `status`, and is reaped."""
    start = T0 - 10_000
    return [
        fork(T0, pid),
        execve(T0 + MS, pid, start, [b"true"]),
        exit_(T0 + 2 * MS, pid, start, status, comm=b"true"),
        reap(T0 + 3 * MS, pid, status),
    ]


def table_of(events: list[Event]) -> ProcessTable:
    table = ProcessTable()
    table.write(events)
    return table


def stream_text(events: list[Event]) -> str:
    return "\n".join(StreamRenderer(CLOCK, color=False).lines(events))


def timeline_text(table: ProcessTable) -> str:
    out = io.StringIO()
    render_timeline(table, None, out, color=False)
    return out.getvalue()


def tree_text(table: ProcessTable) -> str:
    out = io.StringIO()
    render_tree(table, out, color=False, width=200)
    return out.getvalue()


def trace_events(table: ProcessTable) -> list[dict[str, Any]]:
    out = io.StringIO()
    export_chrome_trace(table, out, CLOCK)
    return json.loads(out.getvalue())["traceEvents"]


def lifetime_slice(table: ProcessTable, pid: int) -> dict[str, Any]:
    return next(e for e in trace_events(table) if e.get("cat") == "process" and e["args"]["pid"] == pid)


# ---------------------------------------------------------------------------
# Outcomes


@pytest.mark.parametrize("status", STATUSES, ids=lambda s: outcome(s)[0])
def test_the_stream_the_views_and_the_trace_word_a_wait_status_identically(status: WaitStatus) -> None:
    words, _ = outcome(status)
    events = ended(status)
    table = table_of(events)
    stream = stream_text(events).splitlines()
    assert f"process {words} after" in stream[2]
    assert stream[3].endswith(f"reaped 200 ({words})")
    assert f"  {words} after 2.0ms" in timeline_text(table)
    assert f"  {words}" in tree_text(table)
    piece = lifetime_slice(table, 200)
    assert piece["args"]["outcome"] == words
    assert piece["name"] == f"true: {words}"


def test_every_output_says_a_core_dump_the_same_way() -> None:
    status = WaitStatus(SIGSEGV | 0x80)
    events = ended(status)
    table = table_of(events)
    said = "killed by SIGSEGV (core dumped)"
    assert outcome(status) == (said, "exit_bad")
    for text in (stream_text(events), timeline_text(table), tree_text(table), json.dumps(trace_events(table))):
        assert text.count("core dumped") == text.count(said) > 0
    assert json.loads(event_json(events[2], CLOCK))["core_dumped"] is True
    assert timeline_json(table, [200])[0]["core_dumped"] is True
    assert lifetime_slice(table, 200)["args"]["core_dumped"] is True


def test_success_is_the_only_ok_outcome_and_an_unseen_end_is_neither() -> None:
    assert [outcome(s)[1] for s in STATUSES] == ["exit_ok"] + ["exit_bad"] * 4
    assert outcome(None) == ("end not seen", "other")


# ---------------------------------------------------------------------------
# Status fields


@pytest.mark.parametrize("status", STATUSES, ids=lambda s: outcome(s)[0])
def test_json_lines_the_json_timeline_and_the_trace_carry_the_same_status_fields(status: WaitStatus) -> None:
    events = ended(status)
    table = table_of(events)
    fields = status_fields(status)
    assert list(fields) == ["exit_code", "signal", "core_dumped", "status"]
    exit_line, reap_line = (json.loads(event_json(ev, CLOCK)) for ev in events[2:])
    process = timeline_json(table, [200])[0]
    trace_args = lifetime_slice(table, 200)["args"]
    for obj in (exit_line, reap_line, process, trace_args):
        assert {key: obj[key] for key in fields} == fields


def test_status_fields_say_exit_code_or_signal_never_both() -> None:
    assert status_fields(exited(3)) == {"exit_code": 3, "signal": None, "core_dumped": False, "status": 3 << 8}
    assert status_fields(killed(SIGTERM)) == {
        "exit_code": None,
        "signal": "SIGTERM",
        "core_dumped": False,
        "status": 15,
    }
    assert status_fields(None) == {"exit_code": None, "signal": None, "core_dumped": False, "status": None}


def test_a_process_whose_end_was_not_seen_has_null_status_fields_in_the_timeline_and_none_in_the_trace() -> None:
    table = table_of([fork(T0, 200), execve(T0 + MS, 200, T0 - 10_000, [b"sleep"])])
    assert {k: timeline_json(table, [200])[0][k] for k in status_fields(None)} == status_fields(None)
    assert not set(status_fields(None)) & set(lifetime_slice(table, 200)["args"])


# ---------------------------------------------------------------------------
# Handlers


@pytest.mark.parametrize(("handler", "name"), [(0, "default"), (1, "ignore"), (HANDLER_ADDRESS, "handler")])
def test_json_lines_the_json_timeline_and_the_trace_name_a_handler_alike(handler: int, name: str) -> None:
    start = T0 - 10_000
    delivery = deliver(T0 + MS, 200, start, SIGUSR1, handler=handler)
    table = table_of([fork(T0, 200), delivery])
    assert handler_name(handler) == name
    assert json.loads(event_json(delivery, CLOCK))["handler"] == name
    assert timeline_json(table, [200])[0]["signals"][0]["handler"] == name
    instant = next(e for e in trace_events(table) if e.get("cat") == "signal")
    assert instant["args"]["handler"] == name


def test_a_handler_name_reads_back_as_a_value_with_the_same_name() -> None:
    for name in ("default", "ignore", "handler"):
        assert handler_name(HANDLER_VALUES[name]) == name
    assert set(HANDLER_VALUES) == {*HANDLER_NAMES.values(), "handler"}


# ---------------------------------------------------------------------------
# Deliveries


def test_a_group_exit_sigkill_stands_for_its_cause_and_any_other_signal_for_itself() -> None:
    assert group_exit_cause(SIGKILL, SIGTERM) == SIGTERM
    assert group_exit_cause(SIGKILL, 0) == 0
    assert group_exit_cause(SIGUSR1, SIGTERM) == 0  # only the SIGKILL sent to every thread stands for another


def test_every_output_names_the_cause_of_a_group_exit_sigkill() -> None:
    start = T0 - 10_000
    delivery = deliver(T0 + MS, 200, start, SIGKILL, group_exit=SIGTERM)
    table = table_of([fork(T0, 200), delivery, exit_(T0 + 2 * MS, 200, start, killed(SIGTERM))])
    assert stream_text([delivery]).endswith("SIGKILL (group exit by SIGTERM) delivered")
    assert "SIGKILL delivered (group exit by SIGTERM)" in timeline_text(table)
    instant = next(e for e in trace_events(table) if e.get("cat") == "signal")
    assert (instant["name"], instant["args"]["group_exit_signal"]) == (
        "SIGKILL delivered (group exit by SIGTERM)",
        "SIGTERM",
    )
    assert json.loads(event_json(delivery, CLOCK))["group_exit_signal"] == "SIGTERM"


@pytest.mark.parametrize(
    ("signo", "handler", "group_exit", "terse", "prose"),
    [
        (SIGTERM, 0, 0, "SIGTERM delivered, default action", "SIGTERM delivered, default action"),
        (SIGTERM, 1, 0, "SIGTERM delivered, ignored", "SIGTERM delivered, ignored"),
        (SIGUSR1, HANDLER_ADDRESS, 0, "SIGUSR1 delivered to handler", "SIGUSR1 delivered to its handler"),
        (SIGKILL, 0, SIGTERM, "SIGKILL (group exit by SIGTERM) delivered", "SIGKILL delivered (group exit by SIGTERM)"),
        (SIGKILL, 0, SIGKILL, "SIGKILL delivered (group exit)", "SIGKILL delivered (group exit by SIGKILL)"),
    ],
)
def test_the_stream_says_a_delivery_tersely_and_the_timeline_in_prose(
    signo: int, handler: int, group_exit: int, terse: str, prose: str
) -> None:
    assert delivered_words(signo, handler, group_exit, terse=True) == terse
    assert delivered_words(signo, handler, group_exit, terse=False) == prose
    delivery = deliver(T0 + MS, 200, T0 - 10_000, signo, handler=handler, group_exit=group_exit)
    assert stream_text([delivery]).endswith(terse)
    assert f"  {prose}" in timeline_text(table_of([fork(T0, 200), delivery]))


def test_every_handler_address_is_said_the_same_way() -> None:
    said = {delivered_words(SIGUSR1, address, 0, terse=True) for address in range(2, 10_000, 7)}
    assert said == {"SIGUSR1 delivered to handler"}


def test_a_trace_title_names_the_delivery_without_its_disposition() -> None:
    assert delivered_title(SIGUSR1, 0) == "SIGUSR1 delivered"
    assert delivered_title(SIGKILL, SIGTERM) == delivered_words(SIGKILL, 1, SIGTERM, terse=False)


# ---------------------------------------------------------------------------
# Generated signals


def test_the_timeline_and_the_trace_say_who_sent_a_signal_alike() -> None:
    table = table_of([fork(T0, 200), generate(T0 + MS, 200, SIGTERM)])
    assert sent_words(SIGTERM, None) == "SIGTERM from the kernel"
    assert f"  {sent_words(SIGTERM, f'{SHELL} (sh)')}" in timeline_text(table)
    names = [e["name"] for e in trace_events(table) if e.get("cat") == "signal"]
    assert names == [sent_words(SIGTERM, str(SHELL))]


@pytest.mark.parametrize(("result", "name", "words"), [(2, "already_pending", "already pending"), (7, "7", "result 7")])
def test_a_result_is_named_for_programs_and_worded_for_people(result: int, name: str, words: str) -> None:
    assert (result_name(result), result_words(result)) == (name, words)
    ev = generate(T0, 200, SIGTERM)
    ev.result = result
    assert json.loads(event_json(ev, CLOCK))["result"] == name
    assert stream_text([ev]).endswith(f" {words}")
    assert RESULT_VALUES.get(name, result) == result


# ---------------------------------------------------------------------------
# Credentials, capabilities and where a process runs


def test_a_user_is_named_where_the_user_database_knows_it_and_numbered_where_not(monkeypatch) -> None:
    monkeypatch.setattr(words, "_user_names", {})
    assert words.user_name(0) == "root"  # every Linux user database has root
    asked = []

    def unknown(uid: int):
        asked.append(uid)
        raise KeyError(uid)

    monkeypatch.setattr(words.pwd, "getpwuid", unknown)
    assert words.user_name(4_000_123) == "4000123"
    assert words.user_name(4_000_123) == "4000123"
    assert asked == [4_000_123]  # asked once: NSS may be slow
    monkeypatch.setattr(words.pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(OverflowError()))
    assert words.user_name(2**40) == str(2**40)


def test_gained_capabilities_are_named_and_a_full_set_is_all() -> None:
    assert capabilities_gained_words(1 << 21) == "+cap_sys_admin"
    assert capabilities_gained_words(ALL_CAPABILITIES) == "+all capabilities"
    user = Credentials(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0)
    setgid = Credentials(1000, 1000, 1000, 1000, 1000, 42, 42, 42, 0)
    assert privilege_gain_words(user, setgid) == "privilege gain: egid 1000->42"


def test_a_container_is_said_by_its_short_id_and_a_unit_by_its_name() -> None:
    long_id = "0123456789ab" + "c" * 52
    assert group_of(f"/kubepods/burstable/pod1/{long_id}".encode()) == "container 0123456789ab"
    assert group_of(b"/system.slice/ssh.service") == "ssh.service"
    assert group_of(b"/user.slice") is None and group_of(None) is None
    assert group_words(("unit", b"a\x1bb.service")) == "a\\x1bb.service"


def test_a_gain_of_privilege_is_said_alike_by_the_stream_the_timeline_the_tree_and_the_json() -> None:
    start = T0 + MS - 10_000
    gain = context(b"/tmp", now=creds(0, caps=ALL_CAPABILITIES), before=creds(1000))
    events: list[Event] = [fork(T0 + MS, 200), execve(T0 + MS + 10, 200, start, [b"sudo", b"id"], context=gain)]
    said = "privilege gain: euid 1000->0, +all capabilities"
    assert StreamRenderer(CLOCK, color=False).line(events[1]).endswith(f"({said})")
    table = ProcessTable()
    table.write(events)
    timeline, tree = io.StringIO(), io.StringIO()
    render_timeline(table, [200], timeline, color=False)
    render_tree(table, tree, color=False, width=200)
    assert f"exec /usr/bin/sudo sudo id ({said})" in timeline.getvalue()
    assert f"  {said}\n" in tree.getvalue()
    assert json.loads(event_json(events[1], CLOCK))["privilege_gain"] is True
    (record,) = [r for r in timeline_json(table, [200])]
    assert record["privilege_gain"] is True and record["execs"][0]["privilege_gain"] is True


def test_a_capability_set_that_lacks_a_few_is_said_by_what_it_lacks() -> None:
    root_in_a_container = ALL_CAPABILITIES & ~(1 << 24)  # cap_sys_resource dropped from the bounding set
    assert words.capability_set_words(root_in_a_container) == "all but cap_sys_resource"
    assert words.capability_set_words(ALL_CAPABILITIES) == "all"
    assert words.capability_set_words(0) == "none"
    assert words.capability_set_words(1 << 5 | 1 << 13) == "cap_kill,cap_net_raw"
    assert words.capability_set_words(root_in_a_container | 1 << 45) == "all but cap_sys_resource and cap_45"
    nine_missing = ALL_CAPABILITIES & ~0x1FF
    assert words.capability_set_words(nine_missing).startswith("cap_linux_immutable,")  # too many left out: names
    user = Credentials(0, 0, 0, 0, 0, 0, 0, 0, root_in_a_container)
    nobody = Credentials(65534, 65534, 65534, 65534, 0, 0, 0, 0, 0)
    assert "caps all but cap_sys_resource->none" in words.credentials_change_words(user, nobody)
