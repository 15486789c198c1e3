"""--top in a real terminal: tmux runs proctrace's live view at a fixed size,
send-keys types, capture-pane reads the screen. Each test marks the processes
it starts with a name of its own and filters the view to it, so the rest of
the machine never enters its assertions."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.environment import requires
from tests.live.conftest import ROOT

pytestmark = pytest.mark.live

DEADLINE_S = 30.0


class Pane:
    """One tmux server of the test's own (its own socket), one window."""

    def __init__(self, command: str, width: int = 100, height: int = 30) -> None:
        self.socket = f"pt-top-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # After proctrace ends, the shell says how it ended and how the terminal was left.
        # The trap keeps the shell alive through a Ctrl-C sent to the pane (a trap
        # with a command, unlike an ignored signal, is not inherited by proctrace).
        script = (
            f"trap true INT; {command}; echo PT_EXIT=$?; "
            "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo PT_STTY; sleep 600"
        )
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "sh", "-c", script)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"tmux {args[0]}: {done.stderr}"
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)

    def wait_for(self, what: Callable[[str], bool], why: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            shown = self.screen()
            if what(shown):
                return shown
            if time.monotonic() > deadline:
                pytest.fail(f"the screen never showed {why}; it shows:\n{shown}")
            time.sleep(0.2)

    def alternate_screen(self) -> bool:
        return self.tmux("display-message", "-p", "#{alternate_on}").strip() == "1"

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def proctrace_command(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "proctrace", *args])


@pytest.fixture
def pane_factory() -> Iterator[Callable[..., Pane]]:
    requires(shutil.which("tmux") is not None, "tmux is not installed (scripts/setup --test-tools installs it)")
    panes: list[Pane] = []

    def start(command: str, **size: int) -> Pane:
        pane = Pane(f"cd {shlex.quote(str(ROOT))} && {command}", **size)
        panes.append(pane)
        return pane

    yield start
    for pane in panes:
        pane.close()


def marked_program(tmp_path: Path, name: str) -> Path:
    """A copy of sleep under `name`, so its command name is the test's own."""
    program = tmp_path / name
    shutil.copy("/bin/sleep", program)
    return program


def started_view(pane_factory: Callable[..., Pane], *args: str, **size: int) -> Pane:
    pane = pane_factory(proctrace_command("--top", *args), **size)
    pane.wait_for(lambda s: "proctrace --top" in s and "q quit" in s, "the live view")
    return pane


def filter_to(pane: Pane, text: str) -> None:
    pane.keys("/")
    pane.type(text)
    pane.keys("Enter")
    pane.wait_for(lambda s: f"filter: {text}" in s.splitlines()[0], f"the filter {text!r} in the header")


def ended_with(pane: Pane, status: int, why: str) -> None:
    """proctrace ended with `status` and left the terminal as it found it."""
    shown = pane.wait_for(lambda s: "PT_STTY" in s, f"the shell after {why}")
    assert f"PT_EXIT={status}" in shown
    after = shown.split(f"PT_EXIT={status}", 1)[1]
    assert "icanon" in after and "echo" in after, "line editing or echo left off"
    assert not pane.alternate_screen(), "the alternate screen was left on"


def quit_and_check_terminal(pane: Pane) -> None:
    pane.keys("q")
    ended_with(pane, 0, "q")


def record(tmp_path: Path, command: list[str], status: int = 0) -> Path:
    """A recording of `command`, made with -w."""
    recording = tmp_path / "s.rec"
    done = subprocess.run(
        [sys.executable, "-m", "proctrace", "-q", "-w", str(recording), "--", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == status, done.stderr
    return recording


def test_a_marked_process_appears_dies_by_sigterm_and_its_timeline_opens(tmp_path, pane_factory):
    name = f"ptmark{uuid.uuid4().hex[:6]}"
    pane = started_view(pane_factory)
    child = subprocess.Popen([name, "300"], executable=marked_program(tmp_path, name))
    try:
        filter_to(pane, name)
        shown = pane.wait_for(lambda s: f"{child.pid} " in s and name in s, f"pid {child.pid}")
        assert "[kthreadd]" not in shown, "the filter let other processes through"
        row = next(line for line in shown.splitlines() if f"{name} 300" in line)
        assert row.split()[0] == str(child.pid) and "running" in row
        child.terminate()
        child.wait(timeout=10)
        pane.wait_for(
            lambda s: any(str(child.pid) in line and "killed by SIGTERM" in line for line in s.splitlines()),
            "its death by SIGTERM",
        )
        pane.keys("Enter")
        shown = pane.wait_for(lambda s: f"timeline of {child.pid}" in s, "the timeline")
        assert f"exec {tmp_path}/{name}" in shown and "killed by SIGTERM" in shown
        pane.keys("Escape")
        pane.wait_for(lambda s: "proctrace --top" in s, "the tree again")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    quit_and_check_terminal(pane)


def test_a_hostile_name_is_shown_escaped(tmp_path, pane_factory):
    tag = uuid.uuid4().hex[:4]
    name = f"\x1b[31mEV{tag}"
    pane = started_view(pane_factory)
    child = subprocess.Popen([name, "300"], executable=marked_program(tmp_path, name))
    try:
        filter_to(pane, f"EV{tag}")
        shown = pane.wait_for(lambda s: f"EV{tag}' 300" in s, "the hostile process")
        row = next(line for line in shown.splitlines() if f"EV{tag}' 300" in line)
        # Had the escape reached the terminal, "[31m" would have been eaten as a colour.
        assert f"[31mEV{tag}" in row and "\\" in row
    finally:
        child.kill()
        child.wait()
    quit_and_check_terminal(pane)


def test_the_view_fits_80_by_24_and_follows_a_resize(pane_factory):
    pane = started_view(pane_factory, width=120, height=40)
    pane.tmux("resize-window", "-x", "80", "-y", "24")

    def fitted(shown: str) -> bool:
        lines = shown.rstrip("\n").splitlines()
        return len(lines) == 24 and lines[0].startswith("proctrace --top") and lines[-1].startswith("q quit")

    pane.wait_for(fitted, "the header on the first row and the keys on the last of 24")
    quit_and_check_terminal(pane)


def test_a_recording_replays_in_the_view(tmp_path, pane_factory):
    name = f"ptrec{uuid.uuid4().hex[:6]}"
    marked_program(tmp_path, name)
    recording = record(tmp_path, ["sh", "-c", f"PATH={tmp_path}:$PATH; {name} 0.1; exit 3"], status=3)
    pane = started_view(pane_factory, "-r", str(recording))
    filter_to(pane, name)
    shown = pane.wait_for(lambda s: f"{name} 0.1" in s, "the recorded process")
    row = next(line for line in shown.splitlines() if f"{name} 0.1" in line)
    assert "exit 0" in row
    quit_and_check_terminal(pane)


def test_the_terminal_is_restored_when_the_command_ends(pane_factory):
    pane = pane_factory(proctrace_command("--top", "--", "sh", "-c", "sleep 2; exit 4"))
    ended_with(pane, 4, "the command ended")  # with the command's status, as without --top


def test_the_terminal_is_restored_on_ctrl_c(pane_factory):
    pane = started_view(pane_factory)
    pane.keys("C-c")
    ended_with(pane, 0, "Ctrl-C")


def test_a_replay_is_restored_on_ctrl_c(tmp_path, pane_factory):
    pane = started_view(pane_factory, "-r", str(record(tmp_path, ["true"])))
    pane.keys("C-c")
    ended_with(pane, 130, "Ctrl-C")  # an interrupted replay, as without --top
