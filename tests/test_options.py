"""The command line's arguments as SessionOptions (tracer/cli.py,
tracer/session/options.py): every option lands in its typed field, and nothing
below the command line sees argparse."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from proctrace.cli import build_parser, session_options, split_command
from proctrace.kernel.program import ARGV_MAX_DEFAULT
from proctrace.model.events import EVENT_KINDS
from proctrace.model.filters import FilterError, FilterSpec
from proctrace.session.options import OutputOptions, SessionOptions, TransportOptions

SESSION_DIR = Path(__file__).resolve().parents[1] / "tracer" / "session"


def options_of(*argv: str) -> SessionOptions:
    own, command = split_command(list(argv))
    return session_options(build_parser().parse_args(own), command)


def test_no_arguments_trace_the_whole_machine_with_the_defaults() -> None:
    options = options_of()
    assert options == SessionOptions()
    assert options.transport.argv_max == ARGV_MAX_DEFAULT
    assert options.filters.kinds == frozenset(EVENT_KINDS)
    assert not options.outputs.views


def test_every_output_option_lands_in_its_field() -> None:
    options = options_of(
        "--json", "-o", "out.txt", "-w", "s.rec", "-q", "--force", "--color", "never",
        "--timeline", "5", "7", "--tree", "--summary", "--export-trace", "t.json",
    )  # fmt: skip
    assert options.outputs == OutputOptions(
        json=True,
        output_path="out.txt",
        record_path="s.rec",
        quiet=True,
        force=True,
        color="never",
        timeline=(5, 7),
        tree=True,
        summary=True,
        export_path="t.json",
    )


@pytest.mark.parametrize(
    ("argv", "timeline", "views"),
    [((), None, False), (("--timeline",), (), True), (("--timeline", "9"), (9,), True), (("--tree",), None, True)],
)
def test_a_timeline_of_every_process_differs_from_no_timeline(
    argv: tuple[str, ...], timeline: tuple[int, ...] | None, views: bool
) -> None:
    outputs = options_of(*argv).outputs
    assert outputs.timeline == timeline
    assert outputs.views is views


def test_the_filters_become_a_filter_spec() -> None:
    options = options_of(
        "-c", "make", "-c", "gcc*", "--regex", "-f", "-p", "12", "-u", "0",
        "-e", "exec,exit", "-C", "kworker", "--no-threads",
    )  # fmt: skip
    assert options.filters == FilterSpec(
        comms=("make", "gcc*"),
        regex=True,
        follow=True,
        pids=(12,),
        uids=(0,),
        kinds=frozenset({"exec", "exit"}),
        exclude=("kworker",),
        no_threads=True,
    )


def test_the_transport_options_are_parsed_sizes() -> None:
    options = options_of("--buffer", "perf", "--buffer-size", "16M", "--argv-max", "16K")
    assert options.transport == TransportOptions(buffer="perf", buffer_size=16 << 20, argv_max=16 << 10)


def test_the_signal_options() -> None:
    assert options_of().transport == TransportOptions()
    assert (options_of().transport.signal_rate, options_of().transport.all_signals) == (1000, False)
    options = options_of("--signal-rate", "0", "--all-signals", "--signal-buffer-size", "64K")
    assert options.transport == TransportOptions(signal_rate=0, all_signals=True, signal_buffer_size=64 << 10)


def test_a_command_after_the_separator_is_kept_whole_with_its_own_options() -> None:
    options = options_of("--as-root", "--", "make", "-j2", "--json")
    assert options.command == ("make", "-j2", "--json")
    assert options.as_root
    assert not options.outputs.json  # --json after -- is the command's


def test_a_recording_to_read_is_its_path() -> None:
    assert options_of("-r", "s.rec.gz").read_path == "s.rec.gz"
    assert options_of().read_path is None


def test_a_bad_pattern_fails_while_building_the_options() -> None:
    with pytest.raises(FilterError, match="invalid regular expression"):
        options_of("-c", "a(", "--regex")


def test_the_options_cannot_change_once_built() -> None:
    options = options_of("--json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.outputs.json = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.command = ("true",)  # type: ignore[misc]


def test_no_session_module_imports_argparse() -> None:
    """The session takes SessionOptions: argparse is the command line's business."""
    importers = []
    for path in sorted(SESSION_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if "argparse" in names:
                importers.append(path.name)
    assert importers == []
