"""`proctrace doctor`: a read-only report of whether live tracing will work here.

It prints every prerequisite from proctrace.kernel.prereqs with a mark, what is missing and
how to fix it, and exits 0 only when live tracing will work. It mounts and links
nothing: gaps that proctrace closes by itself are reported as such.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from proctrace import PURE_PYTHON_ENV, pure_python
from proctrace.kernel.prereqs import Check, Host, Status, all_checks

MARKS = {Status.OK: "✓", Status.AUTO: "✓", Status.WARN: "!", Status.FAIL: "✗"}
ASCII_MARKS = {Status.OK: "ok", Status.AUTO: "ok", Status.WARN: "!!", Status.FAIL: "XX"}


def _marks_for(stream: TextIO) -> dict[Status, str]:
    """Unicode marks unless the stream cannot encode them (e.g. an ASCII pipe)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "".join(MARKS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return MARKS


def format_check(check: Check, marks: dict[Status, str], width: int) -> list[str]:
    lines = [f"  {marks[check.status]} {check.name:<{width}}  {check.detail}"]
    if check.fix and check.status in (Status.FAIL, Status.WARN):
        lines.append(f"    {'':<{width}}  fix: {check.fix}")
    return lines


def verdict(checks: list[Check]) -> tuple[int, str]:
    failed = [c for c in checks if c.status is Status.FAIL]
    if failed:
        names = ", ".join(c.name for c in failed)
        return 1, f"Live tracing will not work: {len(failed)} problem(s) ({names})."
    if any(c.status is Status.WARN for c in checks):
        return 0, "Live tracing will work, with the limits marked '!'."
    return 0, "Live tracing will work."


COMPILED_FIX = "install gcc and the Python headers (python3-dev), then ./scripts/setup (or pip install proctrace again)"


def check_compiled() -> Check:
    """Whether the compiled wire decoder, stream renderer and redaction test are
    built: without them proctrace works the same, in Python, at about twice the
    CPU per event."""
    from proctrace.formats import stream
    from proctrace.kernel import wire
    from proctrace.model import redact

    modules = (("decoder", wire.COMPILED), ("renderer", stream._faststream), ("redaction test", redact.COMPILED_HINT))
    missing = [what for what, built in modules if built is None]
    if not missing:
        return Check("compiled decoder", Status.OK, "the wire decoder, stream renderer and redaction test are compiled")
    why = "" if wire.COMPILED is not None else f" (decoder: {wire.DECODER})"
    named = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    detail = f"the {named} run in Python{why}: the same output, about twice the CPU per event"
    fix = f"unset {PURE_PYTHON_ENV}" if pure_python() else COMPILED_FIX
    return Check("compiled decoder", Status.WARN, detail, fix)


def run_doctor(
    stream: TextIO,
    host: Host | None = None,
    bcc_loader: Callable[[], object] | None = None,
) -> int:
    """Print the report to `stream`; return the exit code (0 only when live tracing will work)."""
    checks = [*all_checks(host, bcc_loader), check_compiled()]
    marks = _marks_for(stream)
    width = max(len(c.name) for c in checks)
    print("proctrace doctor: prerequisites of live tracing", file=stream)
    for check in checks:
        for line in format_check(check, marks, width):
            print(line, file=stream)
    code, summary = verdict(checks)
    print(summary, file=stream)
    return code


def main() -> int:
    import sys

    return run_doctor(sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
