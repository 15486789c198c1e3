"""The results document: the figures of one run per configuration, the targets
judged on them, and the file it is written to (never a tracked file)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proctrace.bench.counting import Tally
from proctrace.bench.stats import bracketing_baselines, median, paired_ratios, slowdown_pct

SCHEMA = "proctrace-bench/1"

# Targets from issue 6 (and issue 4's reading-back rate), made stricter by
# issue 15 (CPU per event, ready time) and joined by its footprint targets.
MAX_SLOWDOWN_PCT = 2.0  # issue 15 (5% before it)
MAX_CPU_US_PER_EVENT = 2.0
MAX_READY_VS_BPFTRACE = 1.0  # through the README's command, scripts/proctrace
MAX_SESSION_RSS_MIB = 40.0  # every process of the session, two seconds after ready
MAX_LIGHT_RSS_MIB = 25.0  # --help and -r FILE
MIN_READBACK_VS_PLAIN = 0.5
MIN_READBACK_EVENTS_PER_S = 200_000
# Below this, reading back is judged on the rate beyond start-up (see stats.marginal_rate).
LARGE_RECORDING_EVENTS = 100_000


def source_checkout() -> Path | None:
    """The proctrace checkout this package runs from (an editable install, as in
    the checkout's .venv), or None for an installed copy."""
    package_dir = Path(__file__).resolve().parent.parent
    root = package_dir.parent
    return root if package_dir.name == "tracer" and (root / "pyproject.toml").is_file() else None


def default_results_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where results go without --results: `.bench/results.json` in the checkout
    (ignored by git), else `$XDG_STATE_HOME/proctrace/bench-results.json`
    (`~/.local/state` when unset)."""
    checkout = source_checkout()
    if checkout is not None:
        return checkout / ".bench" / "results.json"
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "proctrace" / "bench-results.json"


def write_results(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def storm_summary(
    runs: dict[str, list[dict[str, Any]]], baseline: str = "untraced", rate_key: str = "rate"
) -> dict[str, dict[str, Any]]:
    """Per configuration: rates (each run's `rate_key`: the storm's, unless
    another rate is asked for), ratios to the same repetition's baseline, medians.

    The baseline configuration has one run more than the others (it brackets
    every repetition); its own ratios compare each run with the one before,
    which shows the machine's run-to-run noise.
    """
    base_rates = [r.get(rate_key) for r in runs.get(baseline, [])]
    brackets = bracketing_baselines(base_rates)
    out: dict[str, dict[str, Any]] = {}
    for name, reps in runs.items():
        rates = [r.get(rate_key) for r in reps]
        ratios = paired_ratios(rates[1:], rates[:-1]) if name == baseline else paired_ratios(rates, brackets)
        ratio = median(ratios)
        entry: dict[str, Any] = {
            "rates": rates,
            "median_rate": median(rates),
            "ratios": ratios,
            "median_ratio": ratio,
            "slowdown_pct": slowdown_pct(ratio),
        }
        errors = [r["error"] for r in reps if r.get("error")]
        if errors:
            entry["errors"] = errors
        entry["repeated_runs"] = sum(max(r.get("attempts", 1) - 1, 0) for r in reps)
        entry["disturbed_runs"] = sum(1 for r in reps if r.get("disturbed"))
        keys = ("ready_s", "attach_s", "cpu_us_per_event", "cpu_s", "events", "lost", "rss_start_kb", "others_cpu_pct")
        for key in keys:
            values = [r.get(key) for r in reps]
            if any(v is not None for v in values):
                entry[key] = values
                entry[f"median_{key}"] = median(values)
        out[name] = entry
    return out


@dataclass
class Target:
    name: str
    goal: str
    value: str
    status: str  # "pass", "fail", "n/a"

    def as_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "fail")


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def slowdown_target(name: str, storm: dict[str, Any]) -> Target:
    """proctrace's median slowdown of a storm (a storm_summary) against the target,
    with how many of its and the untraced runs were disturbed."""
    slow = storm.get("proctrace", {}).get("slowdown_pct")
    disturbed = sum(storm.get(name, {}).get("disturbed_runs", 0) for name in ("untraced", "proctrace"))
    runs = sum(len(storm.get(name, {}).get("rates", [])) for name in ("untraced", "proctrace"))
    noise = f" ({disturbed} of {runs} runs disturbed)" if disturbed else ""
    return Target(
        name,
        f"<= {MAX_SLOWDOWN_PCT:g}%",
        _fmt(slow, ".1f", "%") + noise,
        _mark(None if slow is None else slow <= MAX_SLOWDOWN_PCT),
    )


def startup_targets(startup: dict[str, Any]) -> list[Target]:
    """Issue 15's: ready no later than bpftrace through the README's command,
    the session's RSS, and the light commands' (bench/startup.py)."""
    if not startup or startup.get("available") is False:
        return []
    targets = []
    entry = "scripts/proctrace" if "scripts/proctrace" in startup else "proctrace"
    ready = startup.get(entry, {}).get("median_ready_s")
    bt = startup.get("bpftrace", {}).get("median_ready_s")
    ok = None if ready is None or not bt else ready <= MAX_READY_VS_BPFTRACE * bt
    targets.append(
        Target(
            f"ready vs bpftrace ({entry})",
            f"<= {MAX_READY_VS_BPFTRACE:g}x",
            f"{_fmt(ready, '.3f', ' s')} vs {_fmt(bt, '.3f', ' s')}"
            + (f" ({ready / bt:.2f}x)" if ready and bt else ""),
            _mark(ok),
        )
    )
    rss = startup.get("proctrace", {}).get("median_rss_kb")
    targets.append(
        Target(
            f"session RSS {startup.get('steady_after_s', 2):g} s after ready",
            f"<= {MAX_SESSION_RSS_MIB:g} MiB",
            _fmt(None if rss is None else rss / 1024, ".1f", " MiB"),
            _mark(None if rss is None else rss / 1024 <= MAX_SESSION_RSS_MIB),
        )
    )
    for name, figures in startup.get("light", {}).items():
        peak = figures.get("peak_kb")
        ok = None if peak is None else peak / 1024 <= MAX_LIGHT_RSS_MIB and not figures.get("imports_bcc")
        targets.append(
            Target(
                f"proctrace {name}: peak RSS, bcc",
                f"<= {MAX_LIGHT_RSS_MIB:g} MiB, no bcc",
                _fmt(None if peak is None else peak / 1024, ".1f", " MiB")
                + (", imports bcc" if figures.get("imports_bcc") else ", no bcc"),
                _mark(ok),
            )
        )
    return targets


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """The issue's targets for proctrace, judged on the figures of this run."""
    storm = results.get("storm", {})
    default = storm.get("proctrace", {})
    targets: list[Target] = []

    # Zero loss with default buffers: nothing reported lost, and every storm event received.
    tallies = [t for name, t in results.get("events", {}).items() if name.startswith("proctrace")]
    if tallies:
        lost = sum(t.get("reported_lost") or 0 for t in tallies)
        missing = sum(max(t.get("missing", 0), 0) for t in tallies)
        timed_lost = sum(
            sum(v or 0 for v in storm.get(name, {}).get("lost", []))
            for name in storm
            if name.startswith("proctrace") and "filtered" not in name
        )
        ok = lost == 0 and missing == 0 and timed_lost == 0
        value = f"{lost + timed_lost} lost, {missing} missing"
    else:
        ok, value = None, "n/a"
    targets.append(Target("zero lost, default buffers", "0 lost, 0 missing", value, _mark(ok)))

    slow = default.get("slowdown_pct")
    targets.append(slowdown_target("storm slowdown (median)", storm))
    bt_slow = storm.get("bpftrace", {}).get("slowdown_pct")
    targets.append(
        Target(
            "slowdown vs bpftrace",
            "<= bpftrace's",
            f"{_fmt(slow, '.1f', '%')} vs {_fmt(bt_slow, '.1f', '%')}",
            _mark(None if slow is None or bt_slow is None else slow <= bt_slow),
        )
    )
    cpu = default.get("median_cpu_us_per_event")
    targets.append(
        Target(
            "CPU per event",
            f"<= {MAX_CPU_US_PER_EVENT:g} us",
            _fmt(cpu, ".2f", " us"),
            _mark(None if cpu is None else cpu <= MAX_CPU_US_PER_EVENT),
        )
    )
    bt_cpu = storm.get("bpftrace", {}).get("median_cpu_us_per_event")
    targets.append(
        Target(
            "CPU per event vs bpftrace",
            "< bpftrace's, same run",
            f"{_fmt(cpu, '.2f', ' us')} vs {_fmt(bt_cpu, '.2f', ' us')}"
            + (f" ({cpu / bt_cpu:.2f}x)" if cpu and bt_cpu else ""),
            _mark(None if cpu is None or bt_cpu is None else cpu < bt_cpu),
        )
    )
    targets += startup_targets(results.get("startup", {}))
    readback = results.get("readback", {})
    if readback.get("available"):
        rate, plain = readback.get("events_per_s"), readback.get("plain_parse_events_per_s")
        basis = ""
        steady, plain_steady = readback.get("steady_events_per_s"), readback.get("plain_parse_steady_events_per_s")
        if readback.get("events", 0) < LARGE_RECORDING_EVENTS and steady and plain_steady:
            # A small recording (--quick) measures mostly the readers' start-up.
            rate, plain, basis = steady, plain_steady, " (beyond start-up)"
        ok = None if rate is None or not plain else rate >= MIN_READBACK_VS_PLAIN * plain
        targets.append(
            Target(
                "reading back vs plain parse",
                f">= {MIN_READBACK_VS_PLAIN:g}x",
                f"{_fmt(rate, ',.0f')} vs {_fmt(plain, ',.0f')} events/s{basis}"
                + (f" ({rate / plain:.2f}x)" if rate and plain else ""),
                _mark(ok),
            )
        )
        reader = readback.get("reader_events_per_s")
        if basis and readback.get("reader_steady_events_per_s"):
            reader = readback.get("reader_steady_events_per_s")
        targets.append(
            Target(
                "reading back rate (issue 4)",
                f">= {MIN_READBACK_EVENTS_PER_S:,} events/s",
                _fmt(reader, ",.0f", f" events/s, the reader alone{basis}"),
                _mark(None if reader is None else reader >= MIN_READBACK_EVENTS_PER_S),
            )
        )
    else:
        targets.append(Target("reading back vs plain parse", f">= {MIN_READBACK_VS_PLAIN:g}x", "n/a", "n/a"))
    filtering = results.get("filtering", {})
    if filtering.get("available"):
        f_cpu, u_cpu = filtering.get("cpu_s_per_1k_spawns"), filtering.get("unfiltered_cpu_s_per_1k_spawns")
        ok = None if f_cpu is None or u_cpu is None else f_cpu < u_cpu
        targets.append(
            Target(
                "filtered trace cheaper (issue 5)",
                "CPU < unfiltered",
                f"{_fmt(f_cpu, '.3f')} vs {_fmt(u_cpu, '.3f')} CPU s per 1k spawns",
                _mark(ok),
            )
        )
    for run in results.get("overload", []):
        if "error" in run:
            targets.append(Target(f"overload {run.get('buffer')}: lost counted", "reported = kernel", "error", "fail"))
            continue
        reported, kernel = run.get("reported_lost"), run.get("kernel_lost")
        ok = None if reported is None or kernel is None else reported == kernel and run.get("unaccounted") == 0
        targets.append(
            Target(
                f"overload {run['buffer']} {run['size']}: lost counted",
                "reported = kernel, none unaccounted",
                f"{_fmt(reported, ',d')} reported, {_fmt(kernel, ',d')} kernel, {run.get('unaccounted')} unaccounted",
                _mark(ok),
            )
        )
    targets.extend(flood_targets(results.get("flood", {})))
    targets.extend(top_targets(results.get("top", {})))
    return targets


def top_targets(top: dict[str, Any]) -> list[Target]:
    """Section 9 (issue 16): under --top, drawn in a terminal, the storm's
    slowdown within the storm's own target and nothing lost."""
    if not top.get("available"):
        status = _mark(False if top.get("failed") else None)
        return [
            Target("storm slowdown under --top (median)", f"<= {MAX_SLOWDOWN_PCT:g}%", top.get("reason", "n/a"), status)
        ]
    slow, stream = top.get("slowdown_pct"), top.get("stream_slowdown_pct")
    return [
        Target(
            "storm slowdown under --top (median)",
            f"<= {MAX_SLOWDOWN_PCT:g}%",
            f"{_fmt(slow, '.1f', '%')} (the stream {_fmt(stream, '.1f', '%')} in the same run)",
            _mark(None if slow is None else slow <= MAX_SLOWDOWN_PCT),
        ),
        Target("lost under --top", "0", f"{top.get('lost')} in {top.get('runs')} runs", _mark(top.get("lost") == 0)),
    ]


FLOOD_LIFECYCLE_TARGET = "lifecycle lost in the flood"


def flood_targets(flood: dict[str, Any]) -> list[Target]:
    """The flood section's targets: no lifecycle event lost or missing in any
    traced flood (with --all-signals too), the storm's slowdown within the
    storm's own target, and every kill() of the kill loop accounted for."""
    if not flood.get("available"):
        # n/a where it cannot run (no C compiler); a failure where it broke.
        status = _mark(False if flood.get("failed") else None)
        return [Target(FLOOD_LIFECYCLE_TARGET, "0 lost, 0 missing", flood.get("reason", "n/a"), status)]
    storm, accounting = flood.get("storm", {}), flood.get("accounting", {})
    failed_runs = sum(len(storm.get(name, {}).get("errors", [])) for name in accounting)
    parts, ok = [], failed_runs == 0
    for name, a in accounting.items():
        if a["runs"]:
            parts.append(f"{a['lifecycle_lost']} lost, {a['lifecycle_missing']} missing ({name})")
            ok = ok and a["lifecycle_lost"] == 0 and a["lifecycle_missing"] == 0
    value = "; ".join(parts) + (f"; {failed_runs} traced runs failed" if failed_runs else "")
    targets = [Target(FLOOD_LIFECYCLE_TARGET, "0 lost, 0 missing", value or "no runs", _mark(ok if parts else False))]

    targets.append(slowdown_target("storm slowdown in the flood (median)", storm))
    default = accounting.get("proctrace", {})
    if default.get("runs"):
        unaccounted, sent = default["kill_unaccounted"], default["kill_sent"]
        targets.append(
            Target(
                "flood: every kill() accounted",
                "streamed + suppressed + lost = sent",
                f"{unaccounted:,} of {sent:,} unaccounted",
                _mark(unaccounted == 0),
            )
        )
    return targets


def results_document(
    settings: dict[str, Any],
    host: dict[str, Any],
    features: dict[str, bool],
    runs: dict[str, list[dict[str, Any]]],
    tallies: dict[str, Tally],
    proctrace: dict[str, Any],
    readback: dict[str, Any],
    filtering: dict[str, Any],
    overload: list[dict[str, Any]],
    flood: dict[str, Any] | None = None,
    startup: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document the bench writes; targets are judged on it."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "settings": settings,
        "host": host,
        "features": features,
        "storm": storm_summary(runs),
        "events": {name: t.as_json() for name, t in tallies.items()},
        "proctrace": proctrace,
        "readback": readback,
        "filtering": filtering,
        "overload": overload,
        "flood": flood or {"available": False, "reason": "n/a (not run)"},
        "startup": startup or {"available": False, "reason": "n/a (not run)"},
        "top": top or {"available": False, "reason": "n/a (not run)"},
    }
    doc["targets"] = [t.as_json() for t in evaluate_targets(doc)]
    return doc
