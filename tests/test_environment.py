"""tests/environment.py: a missing requirement skips a test on a developer's
machine and fails it in CI, where every test must run."""

from __future__ import annotations

import pytest

from tests.environment import REQUIRE_ALL, requires


def test_a_met_requirement_lets_the_test_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    requires(True, "never shown")


def test_a_missing_requirement_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ALL, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs make"):
        requires(False, "needs make")


def test_a_missing_requirement_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="needs make"):
        requires(False, "needs make")
