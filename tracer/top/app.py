"""The live view joined to a session: a Sink that feeds the process table and
the failure log under a lock, and a thread that owns the terminal, reads the
keys and redraws about four times a second, whatever the event rate. The
session's own thread only drains and writes: drawing never holds it up for
longer than one batch takes to go into the table."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from proctrace.formats.views import render_timeline
from proctrace.model.events import LIFECYCLE, Event
from proctrace.model.process_table import ProcessTable
from proctrace.top.model import SORTS, FailureLog, LiveReader, Rates, Rows, ViewState, build_rows
from proctrace.top.screen import Header, frame, text_page
from proctrace.top.terminal import Screen, opened_screen

REDRAW_INTERVAL_S = 0.25

T = TypeVar("T")
# Keys that move the cursor (or scroll a timeline): how many lines.
MOVES = {"j": 1, "down": 1, "k": -1, "up": -1, "pagedown": 10, "pageup": -10}


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_proc(pid: int) -> tuple[str, int] | None:
    """(state letter, CPU ns used so far) of a live process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])
    return fields[0].decode(), ticks * 1_000_000_000 // _CLOCK_TICKS


# How long a process's /proc figures stand before they are read again. A redraw
# comes every 0.25 s and read every live process's /proc/PID/stat, which was
# the view's largest cost under a storm; its CPU and state columns change at
# the pace people read them (top(1) refreshes every 3 s).
PROC_REFRESH_S = 1.0


class ProcCache:
    """read_proc, remembered for PROC_REFRESH_S per pid; entries of pids not
    asked for at a redraw are dropped with the next one."""

    def __init__(self, read: LiveReader = read_proc, clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._clock = read, clock
        self._known: dict[int, tuple[float, tuple[str, int] | None]] = {}
        self._asked: set[int] = set()

    def __call__(self, pid: int) -> tuple[str, int] | None:
        now = self._clock()
        self._asked.add(pid)
        known = self._known.get(pid)
        if known is not None and now - known[0] < PROC_REFRESH_S:
            return known[1]
        value = self._read(pid)
        self._known[pid] = (now, value)
        return value

    def redrawn(self) -> None:
        """A redraw is done: forget the pids it did not show (they ended, or a pid is reused later)."""
        self._known = {pid: v for pid, v in self._known.items() if pid in self._asked}
        self._asked = set()


class TopSink:
    """The view's Sink; `run()` draws it on the terminal until quit."""

    shows_status = False

    def __init__(self, table: ProcessTable, live: bool) -> None:
        self.table = table
        self.live = live
        self.lock = threading.Lock()
        self.failures = FailureLog()
        self.rates = Rates()
        self.state = ViewState()
        self.quit = threading.Event()
        self.paused = False  # `p`: the display stands still; events are still taken
        self.replay_paused = False  # replay only: the replay waits (space steps)
        self.steps = threading.Semaphore(0)
        self.replay_speed: float | None = None
        self._editing = False
        self._timeline: tuple[str, str] | None = None  # (title, text) while a timeline is shown
        self._scroll = 0
        self._frozen: list[str] | None = None
        self._rates = (0.0, 0.0, 0.0)  # events, started, ended a second, as last measured
        self._proc = ProcCache()

    # -- the Sink protocol: called on the session's thread ---------------------

    def write(self, events: list[Event]) -> None:
        with self.lock:
            self.table.write(events)
            self.failures.write(events)
            self.rates.write(events)

    def lost(self, ts_ns: int, new: int, total: int, event_class: str = LIFECYCLE) -> None:
        with self.lock:
            self.table.lost(ts_ns, new, total, event_class)

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    # -- the terminal's thread ---------------------------------------------------

    def now_ns(self) -> int:
        """The event clock now: the kernel's monotonic clock live, the latest event in a replay."""
        if self.live:
            return time.monotonic_ns()
        return self.table.last_ts or 0

    def _rows(self) -> Rows:
        return build_rows(self.table, self.state, self.now_ns(), self._proc if self.live else None)

    def draw(self, screen: Screen, elapsed: float | None) -> None:
        """Draw the screen; with `elapsed`, the seconds since the rates were last
        taken, take them anew (None: a redraw for a key keeps the last rates)."""
        width, height = screen.size()
        if self._timeline is not None:
            title, text = self._timeline
            screen.draw(text_page(title, text, self._scroll, width, height))
            return
        with self.lock:
            if elapsed is not None:
                per_s = max(elapsed, 1e-3)
                self._rates = tuple(n / per_s for n in self.rates.take())  # type: ignore[assignment]
            if self.paused and self._frozen is not None:
                lines = self._frozen
            else:
                rows = self._rows()
                self.state.selected = min(self.state.selected, max(len(rows) - 1, 0))
                replay = ""
                if self.replay_speed is not None:
                    replay = "replay paused (space steps)" if self.replay_paused else f"replay {self.replay_speed:g}x"
                header = Header(*self._rates, self.table.lost_total, self.paused, replay)
                lines = frame(header, self.state, rows, list(self.failures.latest), width, height, True, self._editing)
                self._proc.redrawn()  # after the frame: its rows read /proc as they were drawn
                self._frozen = lines
        screen.draw(lines)

    def key(self, key: str) -> None:
        """One key pressed (terminal.parse_keys names)."""
        state = self.state
        if self._timeline is not None:
            if key in ("escape", "enter", "q", "backspace"):
                self._timeline = None
            elif key in MOVES:
                self._scroll = max(0, self._scroll + MOVES[key])
            return
        if self._editing:
            if key == "enter":
                self._editing = False
            elif key == "escape":
                self._editing, state.name_filter = False, ""
            elif key == "backspace":
                state.name_filter = state.name_filter[:-1]
            elif len(key) == 1 and key.isprintable():
                state.name_filter += key
            state.selected = 0
            self._frozen = None
            return
        if key == "q":
            self.quit.set()
        elif key == "p":
            self.paused = not self.paused
        elif key == " " and self.replay_speed is not None:
            if self.replay_paused:
                self.steps.release()
            else:
                self.replay_paused = True
        elif key == "r" and self.replay_speed is not None:
            self.replay_paused = False
            self.steps.release()
        elif key == "/":
            self._editing = True
        elif key == "f":
            state.failures_only = not state.failures_only
        elif key == "t":
            state.threads = not state.threads
        elif key == "s":
            state.sort = SORTS[(SORTS.index(state.sort) + 1) % len(SORTS)]
        elif key in MOVES:
            state.selected = max(0, state.selected + MOVES[key])
        elif key in ("c", "enter"):
            with self.lock:
                rows = self._rows()
                if not rows:
                    return
                row = rows[min(state.selected, len(rows) - 1)]
                if key == "c":
                    state.collapsed.symmetric_difference_update({row.serial})
                else:
                    self._timeline = (f"timeline of {row.pid}", self._timeline_text(row.serial))
                    self._scroll = 0
        if key != "p":  # pausing keeps the frame on screen as it is; any other key redraws it
            self._frozen = None

    def _timeline_text(self, serial: int) -> str:
        """The life of the process on the selected row, not of every process
        the table keeps that held its pid (a storm reuses pids within seconds)."""
        out = io.StringIO()
        render_timeline(self.table, None, out, False, serials=[serial])
        return out.getvalue()

    def run(self, screen: Screen) -> None:
        """Read keys and redraw until quit is set."""
        last = time.monotonic()
        self.draw(screen, REDRAW_INTERVAL_S)
        while not self.quit.is_set():
            keys = screen.keys(max(0.0, last + REDRAW_INTERVAL_S - time.monotonic()))
            for key in keys:
                self.key(key)
            now = time.monotonic()
            if now - last >= REDRAW_INTERVAL_S:
                self.draw(screen, now - last)
                last = now
            elif keys:
                self.draw(screen, None)

    @contextlib.contextmanager
    def shown(self, on_quit: Callable[[], None]) -> Iterator[None]:
        """The view on the terminal while the block runs (the session's drive);
        `on_quit` is called on the view's thread when q is pressed, to end the
        session. The terminal is restored however the block ends."""
        with opened_screen() as screen:
            errors: list[BaseException] = []

            def ui() -> None:
                try:
                    self.run(screen)
                except BaseException as exc:  # shown after the terminal is restored
                    errors.append(exc)
                    self.quit.set()
                on_quit()

            thread = threading.Thread(target=ui, name="proctrace-top", daemon=True)
            thread.start()
            try:
                yield
            finally:
                self.quit.set()
                self.steps.release()
                thread.join(timeout=2)
        if errors:
            raise errors[0]

    def wait_for_quit(self) -> None:
        """A replay that has ended stays on screen until q."""
        self.quit.wait()


def paced(records: Iterator[T], view: TopSink, speed: float) -> Iterator[T]:
    """A replay's records at `speed` times the pace they were recorded at,
    waiting while the view pauses the replay (space steps one batch)."""
    view.replay_speed = speed
    first_ts: int | None = None
    started = time.monotonic()
    for record in records:
        if view.quit.is_set():
            return
        if type(record) is list and record:  # a batch of events; loss reports and ticks pass at once
            ts = record[0].ts_ns
            if first_ts is None:
                first_ts = ts
            while view.replay_paused and not view.quit.is_set():
                if view.steps.acquire(timeout=0.1):
                    started = time.monotonic() - (ts - first_ts) / 1e9 / speed
                    break
            due = started + (ts - first_ts) / 1e9 / speed
            while not view.quit.is_set() and not view.replay_paused and time.monotonic() < due:
                time.sleep(min(0.05, max(0.0, due - time.monotonic())))
        yield record
