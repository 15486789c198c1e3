"""Opening a proctrace page (the --report HTML) in a real browser: headless
Chromium from the distribution, driven by Playwright. The fixtures `browser`
and `open_report` (tests/conftest.py) are built from these."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.environment import requires

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def launched_browser() -> Iterator[Any]:
    requires(CHROMIUM is not None, "chromium is not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        requires(False, "playwright is not installed (the test extra)")
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def report_opener(browser: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Opens a page for report HTML; collects script errors and CSP violations."""
    contexts = []

    def opened(html: str, name: str = "report.html") -> Any:
        path = tmp_path / name
        path.write_text(html, encoding="utf-8")
        context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
        page.goto(path.as_uri())
        wait_until(page, "document.body.dataset.ready === '1'")
        return page

    yield opened
    for context in contexts:
        context.close()


def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll `expression` in the page until true. (Playwright's wait_for_function
    evaluates its predicate with eval, which the report's policy forbids, as it should.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s}s: {expression}")
        page.wait_for_timeout(20)


def shown_pids(page: Any) -> list[int]:
    """The pids of the report's rows in view, in order."""
    return [int(pid) for pid in page.eval_on_selector_all(".row:not([hidden])", "rows => rows.map(r => r.dataset.pid)")]
