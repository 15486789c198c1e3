"""PATH searches: the failed execs that are not failures.

A command named without a slash is found by trying each directory of PATH in
turn: execvp(3), Python's subprocess and os.execvp, cc's driver and make all
call execve("/usr/local/bin/as"), get ENOENT, call execve("/root/.cargo/bin/as"),
and so on until "/usr/bin/as" runs. The kernel reports every attempt as a
failed exec. This module owns the one rule that tells such misses from real
failures; both sources apply it (tracer/session/live.py as batches leave the
reorder window, tracer/session/replay.py for a recording made before exec
events carried the decision), and every output reads the result from
ExecEvent.path_search. It also owns the tally of misses that the exec ending a
search reports ("after 10 PATH misses"): count_path_miss, take_path_misses.

The rule (mark_path_searches): a failed exec F is a PATH miss when

* its errno is one on which a PATH search goes on to the next directory:
  ENOENT, ENOTDIR (a PATH entry that is a file) or EACCES (a file without
  execute permission, or a directory that cannot be searched);
* its filename is a path (holds a "/") and was read whole;
* the exec events of the same task that follow it are failed attempts of the
  same kind with the same basename, then a successful exec of that basename;
* that success comes within PATH_SEARCH_HORIZON_NS of F.

A failed exec with no such success after it (the command exists nowhere on
PATH) stays a failure; so does one whose next exec is of another name, or
whose errno is any other (EPERM, ENOEXEC, E2BIG...): those end a search.

The task is the thread that called exec. A failed exec's pid is that thread;
a successful exec by a thread other than the leader takes the leader's pid and
names the caller in `old_pid` (exec_caller reads both).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from itertools import chain, islice

from proctrace.model.events import Event, ExecEvent
from proctrace.model.memo import remember

SEARCH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES})
"""The errors on which execvp(3) tries the next directory of PATH."""

PATH_SEARCH_HORIZON_NS = 25_000_000
"""How soon after a failed attempt the exec that ends its search must come.
The attempts of a search are microseconds apart, and the exec that finds the
file usually comes within a millisecond (most of it loading the binary; measured
here, `make -j2` of C files: 0.1-3.7 ms). But the searching task can lose the
CPU in between: with three CPU hogs on 2 vCPUs, searches spanned up to 9 ms (a
scheduler timeslice is a few ms). 25 ms leaves room for that and stays short
enough that a real failure and a much later run of the same name stay apart.

The live source decides when a miss leaves the reorder window: by then it has
every event stamped up to SUBMIT_MARGIN_NS (5 ms, tracer/model/ordering.py)
after it, and those of up to one drain interval more. So a search whose exec
came within 5 ms of a miss is always found; one slower than that, only when
the exec was drained before the miss left the window (under that load, 1
search in 60 was not). What was decided is what the recording keeps."""


def exec_caller(ev: ExecEvent) -> int:
    """The thread that called exec: `old_pid`, or `pid` for an event made
    without one (old_pid 0)."""
    return ev.old_pid or ev.pid


def basename(path: bytes) -> bytes:
    """What follows the last "/" of `path`: the name a PATH search looks for."""
    return path[path.rfind(b"/") + 1 :]


def could_be_path_miss(ev: ExecEvent) -> bool:
    """Whether failed exec `ev` is the kind of failure a PATH search goes past."""
    return ev.errno in SEARCH_ERRNOS and not ev.filename_truncated and b"/" in ev.filename


def _found_later(failed: ExecEvent, following: Iterable[Event], horizon_ns: int) -> bool:
    """Whether the exec events of `failed`'s task in `following` (in timestamp
    order) are more attempts of the same name, then a successful exec of it,
    within `horizon_ns` of `failed`."""
    name = basename(failed.filename)
    tgid, task = failed.tgid, exec_caller(failed)
    limit = failed.ts_ns + horizon_ns
    for ev in following:
        if ev.ts_ns > limit:
            return False
        if type(ev) is not ExecEvent or ev.tgid != tgid or exec_caller(ev) != task:
            continue
        if basename(ev.filename) != name:
            return False
        if not ev.errno:
            return True
        if not could_be_path_miss(ev):
            return False
    return False


def mark_path_searches(
    released: list[Event], lookahead: Sequence[Event], horizon_ns: int = PATH_SEARCH_HORIZON_NS
) -> None:
    """Set `path_search` on each failed exec of `released` that is a PATH miss.

    `released` is a batch in timestamp order; `lookahead` the events known to
    come after it (in order), which a miss's success may be among. Only True
    is ever set: the events of a source start with path_search False."""
    # This runs on every batch, and most hold no failed exec: the plainest
    # comprehension finds that out (~30 ns an event, half of what enumerating costs).
    if not [ev for ev in released if type(ev) is ExecEvent and ev.errno]:
        return
    for i, ev in enumerate(released):
        if type(ev) is ExecEvent and ev.errno and not ev.path_search and could_be_path_miss(ev):
            following = chain(islice(released, i + 1, None), lookahead)
            ev.path_search = _found_later(ev, following, horizon_ns)


PendingMisses = dict[int, tuple[bytes, int]]
"""Calling thread -> (basename, count) of the PATH misses its search has made
so far: what the exec that ends the search says it took."""


def count_path_miss(pending: PendingMisses, miss: ExecEvent) -> None:
    """Count PATH miss `miss` for the exec that will end its search. Bounded
    (tracer/model/memo.py): a count whose exec never comes (a filter hid it)
    is dropped with the rest when the map fills."""
    caller, name = exec_caller(miss), basename(miss.filename)
    earlier = pending.get(caller)
    count = earlier[1] + 1 if earlier is not None and earlier[0] == name else 1
    remember(pending, caller, (name, count))


def take_path_misses(pending: PendingMisses, ev: ExecEvent) -> int:
    """How many PATH misses successful exec `ev` ended, counted once. A count
    for another name is stale (its exec was never seen) and is dropped too."""
    counted = pending.pop(exec_caller(ev), None)
    return counted[1] if counted is not None and counted[0] == basename(ev.filename) else 0
