"""The terminal of the live view: the alternate screen, keys without echo or
line editing, and the way back to the terminal as it was on every way out."""

from __future__ import annotations

import contextlib
import os
import select
import termios
from collections.abc import Iterator

ENTER_SCREEN = "\x1b[?1049h\x1b[?25l"  # the alternate screen; the cursor hidden
LEAVE_SCREEN = "\x1b[?25h\x1b[?1049l"
HOME_CLEAR = "\x1b[H\x1b[2J"

_SEQUENCES = {
    "\x1b[A": "up",
    "\x1b[B": "down",
    "\x1b[5~": "pageup",
    "\x1b[6~": "pagedown",
    "\x1b[H": "home",
    "\x1b[F": "end",
    "\x1bOA": "up",
    "\x1bOB": "down",
}


def parse_keys(data: str) -> list[str]:
    """Keys in what the terminal sent: characters as themselves, arrows and
    page keys by name, Enter as "enter", Escape alone as "escape", Backspace
    as "backspace"."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == "\x1b":
            for seq, name in _SEQUENCES.items():
                if data.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:
                if data.startswith("\x1b[", i):  # an unknown sequence: skip to its final byte
                    j = i + 2
                    while j < len(data) and not ("@" <= data[j] <= "~"):
                        j += 1
                    i = j + 1
                else:
                    keys.append("escape")
                    i += 1
            continue
        c = data[i]
        keys.append({"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace"}.get(c, c))
        i += 1
    return keys


class Screen:
    """The controlling terminal, in the live view's modes while open."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def size(self) -> tuple[int, int]:
        """(columns, lines); 80x24 when the terminal does not say."""
        try:
            size = os.get_terminal_size(self.fd)
            return size.columns or 80, size.lines or 24
        except OSError:
            return 80, 24

    def keys(self, timeout: float) -> list[str]:
        """The keys pressed, waiting at most `timeout` seconds for the first."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        try:
            data = os.read(self.fd, 1024)
        except OSError:
            return []
        return parse_keys(data.decode("utf-8", "replace"))

    def draw(self, lines: list[str]) -> None:
        # One write per frame: a half-drawn frame is never seen.
        os.write(self.fd, (HOME_CLEAR + "\r\n".join(lines)).encode("utf-8", "surrogateescape"))


@contextlib.contextmanager
def opened_screen(path: str = "/dev/tty") -> Iterator[Screen]:
    """The terminal in cbreak mode (keys one at a time, no echo; Ctrl-C still
    a signal) on the alternate screen, restored however the block ends."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        raise TerminalError(f"--top needs a terminal: cannot open {path}: {exc.strerror}") from None
    try:
        try:
            saved = termios.tcgetattr(fd)
        except termios.error:
            raise TerminalError(f"--top needs a terminal: {path} is not one") from None
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        os.write(fd, ENTER_SCREEN.encode())
        try:
            yield Screen(fd)
        finally:
            os.write(fd, LEAVE_SCREEN.encode())
            termios.tcsetattr(fd, termios.TCSANOW, saved)
    finally:
        os.close(fd)


class TerminalError(Exception):
    """No terminal to draw on."""
