"""The loader's handshake with the session, without the kernel: messages and
descriptors over the socket pair, and what the session says when the helper
fails or dies."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct

import pytest
from proctrace.kernel import loader as loader_module
from proctrace.kernel.loader import Loader, LoaderError, _receive, _send


def test_a_message_and_its_descriptors_cross_the_socket_together(tmp_path) -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    files = [tmp_path / f"f{i}" for i in range(3)]
    fds = []
    for i, path in enumerate(files):
        path.write_text(f"file {i}")
        fds.append(os.open(path, os.O_RDONLY))
    _send(left, {"ok": True, "maps": ["a", "b"], "attachments": 1, "pad": "x" * 100_000}, fds)
    message, received = _receive(right, 10)
    assert message is not None and message["maps"] == ["a", "b"] and len(message["pad"]) == 100_000
    # The same open files, under new numbers in the receiver
    assert [os.pread(fd, 16, 0) for fd in received] == [b"file 0", b"file 1", b"file 2"]
    for fd in (*fds, *received):
        os.close(fd)
    left.close()
    right.close()


def test_the_end_of_the_socket_or_a_corrupt_length_is_no_message() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left.sendall(struct.pack("<Q", 10) + b"{}")  # promises 10 bytes, sends 2, then ends
    left.close()
    assert _receive(right) == (None, [])
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left.sendall(struct.pack("<Q", 1 << 62))
    assert _receive(right) == (None, [])


def _fake_helper(reply: dict | None, exit_code: int = 0, fds: list[int] | None = None) -> Loader:
    """A forked child that reads the request and answers `reply` (None: dies by SIGKILL)."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            parent_end.close()
            _receive(child_end)
            if reply is None:
                os.kill(os.getpid(), signal.SIGKILL)
            _send(child_end, reply, fds or [])
        finally:
            os._exit(exit_code)
    child_end.close()
    return Loader(pid, parent_end)


def test_a_helper_that_dies_says_how_and_hands_over_nothing() -> None:
    with pytest.raises(LoaderError, match=r"the BPF loader \(pid \d+\) was killed by SIGKILL before it finished"):
        _fake_helper(None).load("int x;", [], ["events"])


def test_a_helpers_failure_is_its_message_alone() -> None:
    reply = {"ok": False, "error": "bcc is not installed. Fix: apt-get install python3-bpfcc."}
    with pytest.raises(LoaderError) as caught:
        _fake_helper(reply, exit_code=1).load("int x;", [], ["events"])
    assert str(caught.value) == reply["error"]


def test_descriptors_that_do_not_match_the_reply_are_refused_and_closed(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    before = set(os.listdir("/proc/self/fd"))
    helper = _fake_helper({"ok": True, "maps": ["events", "lost_events"], "attachments": 3}, fds=[fd])
    os.close(fd)
    with pytest.raises(LoaderError, match="handed over 1 descriptors, not 2 \\+ 3"):
        helper.load("int x;", [], ["events", "lost_events"])
    assert set(os.listdir("/proc/self/fd")) <= before


def test_abandoning_a_helper_already_waited_for_signals_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    helper = _fake_helper({"ok": False, "error": "no"}, exit_code=1)
    with pytest.raises(LoaderError):
        helper.load("int x;", [], [])
    killed = []
    monkeypatch.setattr(loader_module.os, "kill", lambda pid, sig: killed.append(pid))
    helper.abandon()  # its pid may be another process's by now
    assert killed == []


def test_the_helper_holds_nothing_of_the_session_but_its_socket() -> None:
    import time

    from proctrace.kernel.loader import start_loader

    read_end, write_end = os.pipe()  # as the held command's pipe would be
    loader = start_loader()

    def held() -> dict[str, str]:
        fds = set(os.listdir(f"/proc/{loader.pid}/fd")) - {"0", "1", "2"}
        out = {}
        for fd in fds:
            with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                out[fd] = os.readlink(f"/proc/{loader.pid}/fd/{fd}")
        return out

    try:
        # Until it has closed what it inherited (and whatever its imports opened for a moment)
        deadline = time.monotonic() + 10
        links = held()
        while not (len(links) == 1 and next(iter(links.values())).startswith("socket:")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
            links = held()
        assert len(links) == 1 and next(iter(links.values())).startswith("socket:"), links
    finally:
        loader.abandon()
        os.close(read_end)
        os.close(write_end)


def test_a_machine_without_bcc_gets_bccs_own_message_from_the_real_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    from proctrace.kernel import bcc as bcc_module
    from proctrace.kernel.bcc import BccUnavailable
    from proctrace.kernel.loader import start_loader

    message = "bcc is not installed. Install it: apt-get install python3-bpfcc."

    def no_bcc() -> object:
        raise BccUnavailable(message)

    monkeypatch.setattr(bcc_module, "load_bcc", no_bcc)  # the forked helper inherits it
    with pytest.raises(LoaderError) as caught:
        start_loader().load("int x;", [], ["events"])
    assert str(caught.value) == message


def test_a_ctrl_c_at_the_terminal_leaves_the_helper_to_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from proctrace.kernel import bcc as bcc_module
    from proctrace.kernel.bcc import BccUnavailable
    from proctrace.kernel.loader import start_loader

    def no_bcc() -> object:
        raise BccUnavailable("no bcc here")

    monkeypatch.setattr(bcc_module, "load_bcc", no_bcc)
    loader = start_loader()
    time.sleep(0.2)  # past its start, where it ignores the terminal's signals
    os.kill(loader.pid, signal.SIGINT)  # ours, by pid
    time.sleep(0.1)
    with pytest.raises(LoaderError, match=r"^no bcc here$"):  # it still answers: SIGINT did not kill it
        loader.load("int x;", [], [])
