"""--report on a live session: a known family of processes (tests/workloads/family.py,
which prints its pids) is in the page as it happened, read in Chromium."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.browser import shown_pids, wait_until
from tests.live.conftest import run_proctrace, workload

pytestmark = pytest.mark.live


def embedded(page_html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="proctrace-data">(.*?)</script>', page_html, re.S)
    assert found is not None
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def family_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], Path]:
    where = tmp_path_factory.mktemp("report")
    out = where / "family.html"
    t = run_proctrace(where, workload("family.py"), "--report", str(out))
    assert t.returncode == 0, t.stderr
    return json.loads(t.stdout.strip().splitlines()[-1]), out


def test_the_report_is_private_and_holds_every_process_of_the_family(family_report):
    pids, out = family_report
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = embedded(out.read_text())
    assert data["session"]["source"] == "live"
    assert data["session"]["traced"].endswith(" and its descendants")
    rows = data["processes"]
    # The command's tree: the python that runs the workload and every process it made.
    assert set(pids.values()) <= set(rows["pid"])
    strings = data["strings"]
    outcome = {pid: strings[rows["outcome"][i]] for i, pid in enumerate(rows["pid"])}
    assert outcome[pids["zombie"]] == "exit 3"
    assert outcome[pids["grandchild"]] == "exit 5"
    assert outcome[pids["exec"]] == "exit 0"
    assert data["counts"]["failures"]["non-zero exit"] >= 2
    assert data["counts"]["lost_total"] == 0


def test_the_page_shows_the_family_and_its_zombie(family_report, open_report):
    pids, out = family_report
    page = open_report(out.read_text(), "family.html")
    assert page.errors == []
    shown = set(shown_pids(page))
    assert set(pids.values()) <= shown
    page.fill("#search", str(pids["zombie"]))
    wait_until(page, "document.querySelector('#shown').textContent.includes(' of ')")  # the search is applied
    page.click(f".row[data-pid='{pids['zombie']}']")
    detail = page.inner_text("#detail")
    assert "exit 3" in detail
    # The workload leaves it a zombie for 0.5 s before it reaps it.
    zombie = re.search(r"after (\d+(?:\.\d+)?)ms as a zombie", detail)
    assert zombie is not None, detail
    assert 500 <= float(zombie.group(1)) < 1500
