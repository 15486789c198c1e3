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
from proctrace.model.ordering import SUBMIT_MARGIN_NS

SEARCH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES})
"""The errors on which execvp(3) tries the next directory of PATH."""

PATH_SEARCH_HORIZON_NS = SUBMIT_MARGIN_NS
"""How soon after a failed attempt the successful exec must come to make it a
PATH miss. Measured here (2 vCPUs, `make -j2` of C files): the attempts of one
search were 3-22 us apart, and the successful exec of `as` came 0.1 ms after
the last miss, up to 3.7 ms with both CPUs busy (loading a binary is most of
it). The horizon is the reorder window's margin on purpose: when the live
source releases a failed exec, every event stamped up to the margin after it
has been drained (the exec program submits microseconds after its timestamp;
the margin is its worst case) and is either later in the batch or still in the
window. So the lookahead live always spans the horizon, and the decision is
the one a reader of the whole recording makes."""


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
