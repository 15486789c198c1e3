"""The systemd service (scripts/systemd/, scripts/install-service): what the
installer writes below a --root, that it keeps an operator's options, that
systemd itself accepts the unit it writes, and that the options it ships are
ones proctrace takes."""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from proctrace.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "scripts" / "install-service"
DEFAULTS = ROOT / "scripts" / "systemd" / "proctrace.default"
# The rotation flags the unit's options use, built on another branch (issue 18,
# item 1): until the parser has them they are the only words it may not know.
ROTATION = {"--rotate-time": "1h", "--keep": "24"}


def install(root: Path, *args: str, bin_path: str | None = None) -> subprocess.CompletedProcess[str]:
    # Always below a temporary root: a test never installs into the machine's /etc.
    command = [str(INSTALLER), "--root", str(root), "--bin", bin_path or sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def shipped_options() -> list[str]:
    """PROCTRACE_OPTIONS of the shipped config, split as systemd splits $VAR."""
    for line in DEFAULTS.read_text().splitlines():
        if line.startswith("PROCTRACE_OPTIONS="):
            (value,) = shlex.split(line.partition("=")[2])
            return value.split()
    raise AssertionError("no PROCTRACE_OPTIONS in the shipped config")


def test_the_installer_writes_the_unit_and_the_config_below_its_root(tmp_path: Path) -> None:
    done = install(tmp_path, bin_path="/opt/proctrace/bin/proctrace")
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "etc" / "systemd" / "system" / "proctrace.service"
    config = tmp_path / "etc" / "default" / "proctrace"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    settings = unit_settings(unit.read_text())
    assert settings["ExecStart"] == ["/opt/proctrace/bin/proctrace $PROCTRACE_OPTIONS"]
    assert settings["EnvironmentFile"] == ["/etc/default/proctrace"]  # the one place of the options
    assert settings["Restart"] == ["on-failure"]
    assert settings["WantedBy"] == ["multi-user.target"]
    assert settings["StateDirectory"] == ["proctrace"]
    assert config.read_text() == DEFAULTS.read_text()
    assert "@PROCTRACE@" not in unit.read_text()
    # Nothing beyond the two files: no systemctl, no set-up below a --root.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "etc/default/proctrace",
        "etc/systemd/system/proctrace.service",
    ]


def test_a_reinstall_keeps_the_operator_options_and_renews_the_unit(tmp_path: Path) -> None:
    assert install(tmp_path, bin_path="/old/proctrace").returncode == 0
    config = tmp_path / "etc" / "default" / "proctrace"
    config.write_text('PROCTRACE_OPTIONS="-q -w /srv/p.rec --otlp http://otel:4318"\n')
    done = install(tmp_path, bin_path="/new/proctrace")
    assert done.returncode == 0, done.stderr
    assert config.read_text() == 'PROCTRACE_OPTIONS="-q -w /srv/p.rec --otlp http://otel:4318"\n'
    assert "kept" in done.stderr
    unit = (tmp_path / "etc" / "systemd" / "system" / "proctrace.service").read_text()
    assert unit_settings(unit)["ExecStart"] == ["/new/proctrace $PROCTRACE_OPTIONS"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--bin", "proctrace"), "absolute path"), (("--bogus",), "unknown option"), (("--bin", "/a|b"), "|")],
)
def test_the_installer_refuses_what_it_cannot_use(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = subprocess.run([str(INSTALLER), "--root", str(tmp_path), *args], capture_output=True, text=True)
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "etc" / "systemd" / "system" / "proctrace.service").exists()


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=unit.parent)


def test_systemd_accepts_the_unit_written(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    done = verify(tmp_path / "etc" / "systemd" / "system" / "proctrace.service")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_verification_can_fail(tmp_path: Path) -> None:
    """The witness of the test above: a unit whose program does not exist is refused."""
    assert install(tmp_path, bin_path="/nonexistent/proctrace").returncode == 0
    done = verify(tmp_path / "etc" / "systemd" / "system" / "proctrace.service")
    assert done.returncode != 0
    assert "/nonexistent/proctrace" in done.stderr


def test_the_shipped_options_record_quietly_with_rotation_and_metrics_on_loopback() -> None:
    words = shipped_options()
    parser = build_parser()
    known = {flag for action in parser._actions for flag in action.option_strings}
    pending = {flag: value for flag, value in ROTATION.items() if flag not in known}
    args, unknown = parser.parse_known_args(words)
    assert unknown == [w for flag, value in pending.items() for w in (flag, value)]
    assert args.quiet and args.write.startswith("/var/lib/proctrace/")  # the unit's StateDirectory
    assert args.metrics == "127.0.0.1:9090"
    for flag, value in ROTATION.items():
        assert words[words.index(flag) + 1] == value
