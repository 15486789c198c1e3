"""The live view drawn as lines of text: a header of rates, the process tree,
the failures pane and a line of keys; or a process's timeline. Every string
from a process went through text.py's escaping in the model, so nothing drawn
here can reach the terminal as a control sequence or markup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proctrace.formats.text import ansi_codes, crop_cells, format_duration
from proctrace.top.model import Failure, Row, ViewState

_ANSI = ansi_codes()
KEYS_LINE = "q quit  p pause  / filter  f failures  t threads  c collapse  s sort  j/k move  Enter timeline"
FAILURES_SHOWN = 4


@dataclass(frozen=True)
class Header:
    events_per_s: float
    started_per_s: float
    ended_per_s: float
    lost: int
    paused: bool = False
    replay: str = ""  # "replay 2x", "replay paused (space steps)"


def _cpu(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:.2f}s"


def _paint(text: str, role: str, color: bool) -> str:
    if not color:
        return text
    on, off = _ANSI.get(role, ("", ""))
    return f"{on}{text}{off}"


def header_line(h: Header, state: ViewState, shown: int) -> str:
    parts = [
        f"proctrace --top · {h.events_per_s:,.0f} events/s · {h.started_per_s:,.0f} started/s · "
        f"{h.ended_per_s:,.0f} ended/s · {h.lost} lost · {shown} shown"
    ]
    if h.replay:
        parts.append(h.replay)
    if h.paused:
        parts.append("PAUSED")
    if state.name_filter:
        parts.append(f"filter: {state.name_filter}")
    if state.failures_only:
        parts.append("failures only")
    if state.sort != "tree":
        parts.append(f"sorted by {state.sort}")
    return " · ".join(parts)


def row_line(row: Row) -> str:
    if row.thread:
        return f"{'':>7} {'':<8} {'':>8} {'':>7} {'thread':<26} {'':>4} {'  ' * row.depth}{row.pid}"
    mark = "+" if row.collapsed else " "
    return (
        f"{row.pid:>7} {crop_cells(row.user, 8):<8} {_cpu(row.cpu_ns):>8} {format_duration(row.age_ns):>7} "
        f"{crop_cells(row.state, 26):<26} {row.children:>4} {'  ' * row.depth}{mark}{row.command}"
    )


COLUMNS = f"{'PID':>7} {'USER':<8} {'CPU':>8} {'AGE':>7} {'STATE':<26} {'KIDS':>4}  COMMAND"


def frame(
    header: Header,
    state: ViewState,
    rows: Sequence[Row],
    failures: list[Failure],
    width: int,
    height: int,
    color: bool,
    editing: bool = False,
) -> list[str]:
    """The screen, `height` lines of at most `width` cells: header, column
    names, as many rows as fit (scrolled to keep the selected one in sight),
    the latest failures, and the keys (or the filter being typed)."""
    fail_lines = min(len(failures), FAILURES_SHOWN)
    body = max(height - 3 - (fail_lines + 1 if fail_lines else 0), 1)
    selected = min(state.selected, max(len(rows) - 1, 0))
    top = max(0, selected - body + 1)
    lines = [_paint(crop_cells(header_line(header, state, len(rows)), width), "other", color)]
    lines.append(_paint(crop_cells(COLUMNS, width), "other", color))
    for index in range(top, min(top + body, len(rows))):
        row = rows[index]
        text = crop_cells(row_line(row), width)
        if index == selected:
            lines.append(f"\x1b[7m{text.ljust(width)}\x1b[0m" if color else ">" + crop_cells(text, width - 1))
        else:
            lines.append(_paint(text, row.role, color))
    while len(lines) < 2 + body:
        lines.append("")
    if fail_lines:
        lines.append(_paint(crop_cells("latest failures", width), "exit_bad", color))
        for f in list(failures)[-fail_lines:][::-1]:
            lines.append(crop_cells(f"  {f.pid:>7} {f.comm}: {f.words}", width))
    prompt = f"filter: {state.name_filter}_  (Enter keeps it, Esc clears it)" if editing else KEYS_LINE
    lines.append(crop_cells(prompt, width))
    return lines[:height]


def text_page(title: str, text: str, scroll: int, width: int, height: int) -> list[str]:
    """A page of text (a timeline) under a title, scrolled by `scroll` lines."""
    body = text.splitlines()
    room = max(height - 2, 1)
    scroll = max(0, min(scroll, max(len(body) - room, 0)))
    lines = [crop_cells(title, width)]
    lines += [crop_cells(line, width) for line in body[scroll : scroll + room]]
    while len(lines) < height - 1:
        lines.append("")
    lines.append(crop_cells("j/k scroll  Esc, Enter or q back", width))
    return lines
