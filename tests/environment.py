"""What a test needs from the machine, and what happens when it is missing.

On a developer's machine a test whose requirement is missing (root, bcc, gcc,
make, bpftrace, the kernel's BTF, a user database entry) is skipped with the
reason. With PROCTRACE_REQUIRE_ALL=1, which scripts/test sets when CI=true, it
fails instead: CI installs everything, so there a skip would only hide a test
that never ran.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = "PROCTRACE_REQUIRE_ALL"


def every_test_must_run() -> bool:
    return os.environ.get(REQUIRE_ALL) == "1"


def requires(met: bool, reason: str) -> None:
    """Go on when `met`; otherwise skip the calling test, or fail it in CI."""
    if met:
        return
    if every_test_must_run():
        pytest.fail(f"required here ({REQUIRE_ALL}=1) but missing: {reason}", pytrace=False)
    pytest.skip(reason)
