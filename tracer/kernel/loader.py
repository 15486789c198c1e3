"""Compiling and loading the BPF programs in a short-lived helper process.

bcc compiles with LLVM, which it maps into the process that calls it: about
110 MiB that a session would carry for as long as it runs, for a compile done
once. So the session forks a helper before anything else (start_loader), and
only the helper imports bcc. The session sends it the program's source; the
helper compiles, loads and attaches it, sends back the descriptors of the
maps the session reads and of the attachments (SCM_RIGHTS over a Unix socket
pair), and leaves with os._exit(), skipping bcc's atexit cleanup, which would
detach what it just handed over.

Everything the kernel holds for the programs is then held by those
descriptors: the perf events of the tracepoint attachments keep the programs,
the programs keep their maps. Closing them detaches everything; a helper that
fails or is killed before handing them over takes them with it, so nothing is
left attached.

Wire protocol (the helper's socket, SOCK_STREAM): each message is an 8-byte
little-endian length and that many bytes of JSON. The session sends
{"source", "attach": [[tracepoint, program], ...], "maps": [name, ...]}; the
helper answers {"ok": true, "maps": [name, ...], "attachments": N, "image": IMAGE}
(the compile as data, tracer/kernel/image.py, or null) with the
maps' descriptors then the attachments' in one SCM_RIGHTS message, or
{"ok": false, "error": "..."}. A request with "hold": true makes the helper
answer {"held": true} once attached, and wait for the end of the socket before
handing anything over: the tests kill it there, attachments held, to check
that its death leaves nothing attached.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proctrace.kernel.bpfsys import BpfMap
from proctrace.kernel.errors import KernelError

_LENGTH = struct.Struct("<Q")
MESSAGE_MAX = 64 << 20  # far above any program's source: a longer length is a corrupt stream
FDS_MAX = 250  # SCM_RIGHTS carries at most 253 descriptors per message (SCM_MAX_FD)
PR_SET_PDEATHSIG = 1


class LoaderError(KernelError):
    """The helper could not compile, load or attach the programs, or died trying."""


@dataclass
class LoadedPrograms:
    """The descriptors that keep the programs loaded and attached."""

    map_fds: dict[str, int]
    attachment_fds: list[int]
    image: str | None = None  # the compile as data (kernel/image.py), from a helper that made one
    _maps: dict[str, BpfMap] = field(default_factory=dict)

    def map(self, name: str) -> BpfMap:
        found = self._maps.get(name)
        if found is None:
            try:
                fd = self.map_fds[name]
            except KeyError:
                raise LoaderError(f"the BPF program has no map named {name!r}") from None
            found = self._maps[name] = BpfMap(fd, name)
        return found

    @property
    def fds(self) -> list[int]:
        return [*self.map_fds.values(), *self.attachment_fds]

    def close(self) -> None:
        """Detach and unload: each tracepoint's perf event costs the kernel a
        grace period as it goes (Probe.close_in_background)."""
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.map_fds, self.attachment_fds, self._maps = {}, [], {}


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    payload = _LENGTH.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [payload], list(fds))
        payload = payload[sent:]
    if payload:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int, into: bytearray) -> bool:
    while len(into) < size:
        chunk = sock.recv(min(size - len(into), 1 << 20))
        if not chunk:
            return False
        into += chunk
    return True


def _receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """A message and the descriptors that came with it; (None, []) at end of file."""
    fds: list[int] = []
    try:
        buf = bytearray()
        if max_fds:
            head, fds, _flags, _addr = socket.recv_fds(sock, _LENGTH.size, max_fds)
            buf += head
        if not _recv_exact(sock, _LENGTH.size, buf):
            raise EOFError
        (length,) = _LENGTH.unpack_from(buf)
        if length > MESSAGE_MAX:
            raise EOFError
        body = bytearray()
        if not _recv_exact(sock, length, body):
            raise EOFError
        return json.loads(body), fds
    except (EOFError, ValueError, OSError):  # OSError: a peer that died with data unread resets the socket
        for fd in fds:
            os.close(fd)
        return None, []


class Loader:
    """The helper process, forked and waiting for a program to load."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.reaped = False  # once waited for, its pid may be another process's

    def load(
        self, source: str, attach: Sequence[tuple[str, str]], maps: Sequence[str], key: str = ""
    ) -> LoadedPrograms:
        """Have the helper compile, load and attach `source` (and attach each
        program of `attach` to its tracepoint), and take over the descriptors
        of `maps` and of every attachment. The helper has exited on return."""
        try:
            with contextlib.suppress(OSError):  # it died first: its status below says how
                request = {"source": source, "attach": [list(a) for a in attach], "maps": list(maps), "key": key}
                _send(self.sock, request)
            reply, fds = _receive(self.sock, FDS_MAX)
        finally:
            self.sock.close()
            status = self._wait()
        if reply is None:
            raise LoaderError(f"the BPF loader (pid {self.pid}) {_ended(status)} before it finished")
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            raise LoaderError(str(reply.get("error", "unknown error")))
        names = reply["maps"]
        if len(fds) != len(names) + reply["attachments"]:
            for fd in fds:
                os.close(fd)
            raise LoaderError(
                f"the BPF loader handed over {len(fds)} descriptors, not {len(names)} + {reply['attachments']}"
            )
        image = reply.get("image")
        return LoadedPrograms(
            dict(zip(names, fds[: len(names)], strict=True)),
            fds[len(names) :],
            image if isinstance(image, str) else None,
        )

    def abandon(self) -> None:
        """Stop the helper without loading anything (the session failed first);
        nothing once it has been waited for."""
        if self.reaped:
            return
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._wait()

    def _wait(self) -> int | None:
        self.reaped = True
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return None


def _ended(status: int | None) -> str:
    if status is None:
        return "ended"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def start_loader() -> Loader:
    """Fork the helper. It keeps only its end of the socket and the standard
    streams: whatever else the session has open by then (the held command's
    pipe, when a cached image failed to load) it closes first, so that it
    can never hold any of it open."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper
        code = 1
        try:
            parent_end.close()
            keep = child_end.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            code = _serve(child_end)
        finally:
            os._exit(code)  # never bcc's atexit cleanup, never the session's handlers
    child_end.close()
    return Loader(pid, parent_end)


def _serve(sock: socket.socket) -> int:
    # Ctrl-C reaches the whole foreground group: the session decides what it
    # means. If the session dies, so does the helper.
    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    from proctrace.kernel.bcc import load_bcc

    # Imported while the session reads BTF and builds the source.
    bcc: Any = None
    failure: BaseException | None = None
    try:
        bcc = load_bcc()
    except Exception as exc:
        failure = exc
    request, _ = _receive(sock)
    if request is None:
        return 0  # the session ended or loads nothing
    try:
        if failure is not None:
            raise failure
        names, fds, attachments, image = _load(bcc, request)
    except Exception as exc:  # bcc raises bare Exception for compile, load and attach failures
        with contextlib.suppress(OSError):
            _send(sock, {"ok": False, "error": _error_words(exc)})
        return 1
    if request.get("hold"):
        _send(sock, {"held": True})
        _receive(sock)  # until the test kills it, or closes the socket
    _send(sock, {"ok": True, "maps": names, "attachments": attachments, "image": image}, fds)
    return 0


def _error_words(exc: BaseException) -> str:
    from proctrace.kernel.bcc import BccUnavailable

    if isinstance(exc, BccUnavailable):
        return str(exc)
    return f"the BPF program did not load: {exc}"


def _load(bcc: Any, request: dict[str, Any]) -> tuple[list[str], list[int], int, str | None]:
    bpf = bcc.BPF(text=request["source"].encode())
    # bcc attaches TRACEPOINT_PROBE and RAW_TRACEPOINT_PROBE programs itself as it loads them
    for tracepoint, program in request["attach"]:
        bpf.attach_tracepoint(tp=tracepoint, fn_name=program)
    names, fds = [], []
    for name in request["maps"]:
        try:
            table = bpf[name]
        except KeyError:
            continue  # not in this build of the program (its options leave it out)
        names.append(name)
        fds.append(table.map_fd)
    attachments = [*bpf.tracepoint_fds.values(), *bpf.raw_tracepoint_fds.values()]
    if len(fds) + len(attachments) > FDS_MAX:
        raise RuntimeError(f"{len(fds) + len(attachments)} descriptors to hand over: more than one message carries")
    image = _image_of(bcc, bpf, request, dict(zip(fds, names, strict=True)))
    return names, fds + attachments, len(attachments), image


def _image_of(bcc: Any, bpf: Any, request: dict[str, Any], map_names: dict[int, str]) -> str | None:
    """What was compiled, as data for the cache (kernel/image.py); None if
    bcc's module does not give it (the session then compiles every time)."""
    from proctrace.kernel.image import BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_TRACEPOINT, make_image

    try:
        programs, attachments = [], []
        for raw_name in list(bpf.funcs):
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            if name.startswith("raw_tracepoint__"):
                prog_type = BPF_PROG_TYPE_RAW_TRACEPOINT
                attachments.append((name, name[len("raw_tracepoint__") :], True))
            else:
                prog_type = BPF_PROG_TYPE_TRACEPOINT
                if name.startswith("tracepoint__"):  # bcc's TRACEPOINT_PROBE name: tracepoint__CATEGORY__EVENT
                    attachments.append((name, name[len("tracepoint__") :].replace("__", ":", 1), False))
            programs.append((name, prog_type, bytes(bpf.dump_func(name.encode()))))
        attachments += [(program, tracepoint, False) for tracepoint, program in request["attach"]]
        license = bcc.libbcc.lib.bpf_module_license(bpf.module).decode()
        return make_image(request.get("key", ""), license, programs, attachments, map_names).to_json()
    except Exception:  # a bcc without these calls: no image, nothing worse
        return None
