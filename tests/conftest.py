"""Shared test set-up: the live BPF tests need root, bcc, a header tree and tracefs.

Outside CI a machine without them skips the live tests with the reason. With
PROCTRACE_REQUIRE_ALL=1 (scripts/test sets it when CI=true) the run stops
instead: a suite whose live tests all skipped has tested nothing. Other tests
state what they need with tests/environment.py's requires(), under the same rule.
"""

from __future__ import annotations

import os

import pytest

from tests.browser import launched_browser, report_opener
from tests.environment import REQUIRE_ALL, every_test_must_run


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (tests/browser.py), started once for the run."""
    yield from launched_browser()


@pytest.fixture
def open_report(browser, tmp_path):
    """Opens report HTML in a fresh offline page of `browser` (tests/browser.py)."""
    yield from report_opener(browser, tmp_path)


def live_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "live BPF tests need root"
    from proctrace.kernel.bcc import load_bcc
    from proctrace.kernel.prereqs import PrereqError, ensure_live_ready

    try:
        ensure_live_ready()
        load_bcc()
    except PrereqError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    live_items = [item for item in items if "live" in item.keywords]
    if not live_items:
        return
    reason = live_unavailable_reason()
    if reason is None:
        return
    if every_test_must_run():
        raise pytest.UsageError(f"live BPF tests are required here ({REQUIRE_ALL}=1) but cannot run: {reason}")
    for item in live_items:
        item.add_marker(pytest.mark.skip(reason=reason))
