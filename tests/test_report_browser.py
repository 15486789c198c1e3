"""The HTML report in a real browser: headless Chromium from the distribution,
driven by Playwright. What a reader sees and does: the processes of a known
recording, search, the failures toggle, the detail pane, zoom, and that
hostile command lines stay text (no script runs, no element is made of them).

The page is opened from file://, as a CI artifact is, with the network off."""

from __future__ import annotations

import json
import re

from proctrace.cli import main
from proctrace.formats.report import render_html, report_data
from proctrace.model.events import LIFECYCLE, SIGNALS

from tests.browser import shown_pids, wait_until
from tests.test_report import HOSTILE, INFO, session_table, write_recording
from tests.test_report import session_events as report_events


def report_html() -> str:
    return render_html(report_data(session_table(), INFO, {LIFECYCLE: 0, SIGNALS: 0}))


def test_the_processes_of_a_recording_appear_with_their_command_lines(open_report, tmp_path):
    rec = tmp_path / "s.rec"
    write_recording(rec, report_events())
    out = tmp_path / "from-cli.html"
    assert main(["-r", str(rec), "--report", str(out), "-o", "/dev/null"]) == 0
    page = open_report(out.read_text())
    assert page.errors == []
    assert shown_pids(page) == [100, 200, 201, 202, 203, 204]
    rows = page.inner_text(".spacer")
    assert "sleep 100" in rows and "killed by SIGTERM" in rows and "exit 1" in rows
    assert "6 processes" in page.inner_text("#shown")
    assert "Events lost: 0" in page.inner_text("#lost")


def test_search_narrows_the_tree_to_matches_and_their_ancestors(open_report):
    page = open_report(report_html())
    page.fill("#search", "sleep 1000")
    wait_until(page, "document.querySelector('#shown').textContent.includes('of')")
    assert shown_pids(page) == [100, 204]
    assert page.inner_text("#shown") == "2 of 6 processes shown"
    page.fill("#search", "201")  # a pid
    wait_until(page, "document.querySelector('#shown').textContent.startsWith('2 of')")
    wait_until(page, "!!document.querySelector(\".row[data-pid='201']\")")
    assert shown_pids(page) == [100, 201]
    page.fill("#search", "")
    wait_until(page, "document.querySelector('#shown').textContent === '6 processes'")


def test_failures_only_shows_what_failed(open_report):
    page = open_report(report_html())
    page.check("#failures-only")
    wait_until(page, "document.querySelector('#shown').textContent.includes('of')")
    assert shown_pids(page) == [100, 201, 202]  # the shell shows as their parent


def test_collapsing_a_process_hides_its_subtree(open_report):
    page = open_report(report_html())
    page.click(".row[data-pid='100'] .twist")
    assert shown_pids(page) == [100]
    page.click(".row[data-pid='100'] .twist")
    assert len(shown_pids(page)) == 6


def test_the_detail_pane_shows_a_life_and_copies_the_command(open_report):
    page = open_report(report_html())
    # Capture what the button copies (file:// pages get no clipboard permission headless).
    secure = page.evaluate("window.isSecureContext && !!navigator.clipboard")
    page.evaluate(
        "window.copied = []; Object.defineProperty(navigator, 'clipboard', "
        "{value: {writeText: (t) => { window.copied.push(t); return Promise.resolve(); }}})"
    )
    page.click(".row[data-pid='202']")
    detail = page.inner_text("#detail")
    assert "false" in detail and "exit 1" in detail
    assert "exec FAILED ENOENT /nope" in detail  # the timeline view's words for the failed exec
    page.click("#copy-command")
    wait_until(page, "window.copied.length === 1")
    assert page.evaluate("window.copied[0]") == "false"
    assert page.inner_text(".copy-status") == "copied"
    assert secure  # file:// is a secure context: the real clipboard API is there for the button


def test_zoom_and_fit_change_the_time_axis(open_report):
    page = open_report(report_html())
    before = page.evaluate("document.querySelector('canvas.axis').toDataURL()")
    page.click(".row[data-pid='201']")
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoomed = page.evaluate("document.querySelector('canvas.axis').toDataURL()")
    assert zoomed != before
    page.click("button:text('fit')")
    assert page.evaluate("document.querySelector('canvas.axis').toDataURL()") == before


def test_a_screenshot_of_the_report_is_produced(open_report, tmp_path):
    page = open_report(report_html())
    page.click(".row[data-pid='201']")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 900)
    assert len(png) > 20_000  # a drawn page, not a blank one


def test_hostile_command_lines_stay_text_and_no_script_of_theirs_runs(open_report):
    page = open_report(report_html(), "hostile.html")
    assert page.title() != "PWNED" and "PWNED" not in page.title()
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed, a').length") == 0
    # The page's own two scripts and nothing else.
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("typeof window.alert") == "function"
    page.click(".row[data-pid='203']")
    detail = page.inner_text("#detail-command")
    assert '</script><script>document.title="PWNED"</script>' in detail
    assert "<img src=x onerror=alert(1)>" in detail
    assert "javascript:alert(1)" in detail
    assert "\\u202e" in detail and "\u202e" not in detail  # the bidi override is shown, not obeyed
    row = page.inner_text(".row[data-pid='203']")
    assert "<img src=x onerror=alert(1)>" in row
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.title() != "PWNED"
    assert page.errors == []


def test_the_policy_blocks_a_script_that_escaped_the_data(open_report):
    """Were the data ever to break out of its element, the CSP would still stop it:
    an inline script that is not the page's own is refused by hash."""
    html = report_html().replace("<body>", '<body><script>document.title="PWNED"</script>', 1)
    page = open_report(html, "escaped.html")
    assert page.title() != "PWNED"
    assert any("Content Security Policy" in error for error in page.errors)


def test_the_page_is_all_there_is(open_report, tmp_path):
    """Offline and from file://: no request leaves the page."""
    requests: list[str] = []
    page = open_report(report_html())
    page.on("request", lambda req: requests.append(req.url))
    page.click(".row[data-pid='200']")
    page.fill("#search", "sh")
    page.wait_for_timeout(300)
    assert requests == []
    assert re.search(r"proctrace report: every process on host", page.title())
    data = json.loads(page.evaluate("document.getElementById('proctrace-data').textContent"))
    assert data["strings"].count(HOSTILE[2].decode()) == 0  # argv is kept whole, in one quoted command line


def test_lost_events_are_shown_in_red_at_the_top(open_report):
    html = render_html(report_data(session_table(), INFO, {LIFECYCLE: 7, SIGNALS: 2}))
    page = open_report(html, "lost.html")
    banner = page.locator("#lost")
    assert banner.inner_text().startswith("Events lost: 9 (7 lifecycle events, 2 signal events)")
    assert "some" in (banner.get_attribute("class") or "")
    assert page.evaluate("getComputedStyle(document.getElementById('lost')).color") == "rgb(142, 27, 16)"


def test_a_session_with_no_process_opens_empty_without_errors(open_report):
    from proctrace.model.process_table import ProcessTable

    page = open_report(render_html(report_data(ProcessTable(), INFO, {LIFECYCLE: 0})), "empty.html")
    assert page.errors == []
    assert shown_pids(page) == []
    assert page.inner_text("#shown") == "0 processes"


def test_rows_out_of_use_stand_for_no_process(open_report):
    page = open_report(report_html())
    page.fill("#search", "sleep 1000")
    wait_until(page, "document.querySelector('#shown').textContent.includes('of')")
    assert page.evaluate("document.querySelectorAll('.row[data-pid]').length") == 2
    page.click(".row[data-pid='204']")  # the one row of 204 there is, in view
    assert "sleep 1000" in page.inner_text("#detail-command")
