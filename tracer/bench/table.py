"""The printed tables of a run: the storm rates, the storm's events, cost and
start-up, reading back, filtering, overload, the flood, and the targets."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from proctrace.bench.machine import MAX_OTHERS_CPU_PCT
from rich.console import Console
from rich.table import Table


def _n(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


Column = Callable[[dict[str, Any]], str]


def _others_cpu(e: dict[str, Any]) -> str:
    return _n(e.get("median_others_cpu_pct"), ".0f") + "%"


def rate_table(title: str, entries: dict[str, dict[str, Any]], columns: dict[str, Column]) -> Table:
    """Rates by configuration (results.storm_summary): the median rate, its ratio
    to the untraced runs around the same rep and the slowdown, then `columns`."""
    t = Table(title=title)
    for col in ("config", "median rate", "ratio", "slowdown", *columns):
        t.add_column(col, justify="left" if col == "config" else "right")
    for name, e in entries.items():
        if e["median_rate"] is None:
            t.add_row(name, "error: " + (e.get("errors") or ["no runs"])[0][:80], *[""] * (len(columns) + 2))
            continue
        t.add_row(
            name,
            _n(e["median_rate"]),
            _n(e["median_ratio"], ".3f"),
            "" if name == "untraced" else _n(e["slowdown_pct"], "+.1f") + "%",
            *(column(e) for column in columns.values()),
        )
    return t


def render(doc: dict[str, Any], console: Console | None = None) -> None:
    """Print the results document as tables."""
    # A pipe or a file gets the width the table needs, not 80 columns.
    console = console or (Console() if sys.stdout.isatty() else Console(width=120))
    s = doc["settings"]
    console.print(
        f"[bold]proctrace bench[/bold] ({'quick' if s['quick'] else 'full'}): {s['reps']} interleaved reps of "
        f"{s['seconds']:g} s, {s['spawners']} spawners ({s['storm']} storm); kernel {doc['host']['kernel']}, "
        f"{doc['host']['cpus']} CPUs, load {doc['host']['loadavg_start'][0]:.2f} -> "
        f"{doc['host']['loadavg_end'][0]:.2f}"
    )

    columns: dict[str, Column] = {
        "ready": lambda e: _n(e.get("median_ready_s"), ".2f") + " s" if e.get("median_ready_s") is not None else "",
        "CPU/event": lambda e: (
            _n(e.get("median_cpu_us_per_event"), ".2f") + " us" if e.get("median_cpu_us_per_event") else ""
        ),
        "lost": lambda e: "" if e.get("lost") is None else str(sum(v or 0 for v in e["lost"])),
        "others' CPU": _others_cpu,
    }
    title = "1. Storm rate (processes/s; ratio to the untraced runs around the same rep)"
    console.print(rate_table(title, doc["storm"], columns))
    repeated = sum(e.get("repeated_runs", 0) for e in doc["storm"].values())
    disturbed = sum(e.get("disturbed_runs", 0) for e in doc["storm"].values())
    console.print(
        f"Everything measured ran at nice {s.get('nice', 0)}. Runs repeated because another BPF tracer was attached "
        f"or other processes used over {MAX_OTHERS_CPU_PCT:g}% of the CPUs: {repeated}; kept disturbed: {disturbed}."
    )

    t = Table(title="2. Storm events: expected, received, reported lost")
    for col in ("tracer (run)", "kinds", "runs", "expected", "received", "missing", "lost"):
        t.add_column(col, justify="left" if col in ("tracer (run)", "kinds") else "right")
    for name, e in doc["events"].items():
        t.add_row(
            name,
            ",".join(e["kinds"]),
            str(e["runs"]),
            f"{e['expected']:,}",
            f"{e['received']:,}",
            f"{e['missing']:,}",
            "not reported" if e["reported_lost"] is None else f"{e['reported_lost']:,}",
        )
    console.print(t)

    p = doc["proctrace"]
    storm = doc["storm"]
    t = Table(title="3. Cost and start-up")
    t.add_column("figure")
    t.add_column("proctrace", justify="right")
    t.add_column("bpftrace", justify="right")
    t.add_column("forkstat", justify="right")
    bt, fs, pt = storm.get("bpftrace", {}), storm.get("forkstat", {}), storm.get("proctrace", {})
    t.add_row(
        "CPU per event (median)",
        _n(pt.get("median_cpu_us_per_event"), ".2f") + " us",
        _n(bt.get("median_cpu_us_per_event"), ".2f") + " us",
        _n(fs.get("median_cpu_us_per_event"), ".2f") + " us",
    )
    t.add_row(
        "start to ready / attach (median)",
        _n(pt.get("median_ready_s"), ".3f") + " s",
        _n(bt.get("median_attach_s"), ".3f") + " s",
        "",
    )
    rss = [pt.get("median_rss_start_kb"), bt.get("median_rss_start_kb"), fs.get("median_rss_start_kb")]
    t.add_row("RSS after start", *[_n(None if v is None else v / 1024, ".1f") + " MB" for v in rss])
    if p:
        t.add_row(
            f"RSS after a {p['long_storm_s']:g} s storm ({p['long_storm_spawned']:,} spawns)",
            _n(None if p["rss_after_long_storm_kb"] is None else p["rss_after_long_storm_kb"] / 1024, ".1f") + " MB",
            "",
            "",
        )
    console.print(t)

    rb = doc["readback"]
    if rb.get("available"):
        t = Table(title=f"4. Reading back a recording of {rb['events']:,} events ({rb['file_bytes'] / 1e6:.1f} MB)")
        t.add_column("reader")
        t.add_column("median CPU time", justify="right")
        t.add_column("events/CPU-s", justify="right")
        t.add_column(f"beyond start-up (vs {_n(rb['small_events'], ',')} events)", justify="right")
        for name, r in rb["readers"].items():
            t.add_row(
                name, _n(r["median_s"]["large"], ".3f") + " s", _n(r["events_per_s"]), _n(r["steady_events_per_s"])
            )
        console.print(t)
    else:
        console.print(f"[bold]4. Reading back[/bold]: {rb['reason']}")
    fl = doc["filtering"]
    if fl.get("available"):
        e = storm.get("proctrace -c (filtered)", {})
        console.print(
            f"[bold]5. Filtering[/bold] (-c {fl['pattern']} during the storm): slowdown "
            f"{_n(e.get('slowdown_pct'), '+.1f')}% vs {_n(pt.get('slowdown_pct'), '+.1f')}% unfiltered; CPU "
            f"{_n(fl['cpu_s_per_1k_spawns'], '.3f')} vs {_n(fl['unfiltered_cpu_s_per_1k_spawns'], '.3f')} "
            "s per 1k spawns"
        )
    else:
        console.print(f"[bold]5. Filtering[/bold]: {fl['reason']}")

    t = Table(title="6. Overload: a tiny buffer under the storm")
    for col in ("buffer", "expected", "received", "lost (reported)", "lost (kernel)", "unaccounted"):
        t.add_column(col, justify="left" if col == "buffer" else "right")
    for run in doc["overload"]:
        if "error" in run:
            t.add_row(f"{run['buffer']} {run['size']}", "error: " + run["error"][:60], "", "", "", "")
            continue
        t.add_row(
            f"{run['buffer']} {run['size']}",
            f"{run['expected']:,}",
            f"{run['received']:,}",
            _n(run["reported_lost"], ",d"),
            _n(run["kernel_lost"], ",d"),
            _n(run["unaccounted"], ",d"),
        )
    console.print(t)

    render_flood(doc.get("flood") or {"available": False, "reason": "n/a (not run)"}, console)
    render_startup(doc.get("startup") or {"available": False, "reason": "n/a (not run)"}, console)
    render_top(doc.get("top") or {"available": False, "reason": "n/a (not run)"}, console)

    t = Table(title="Targets")
    t.add_column("target")
    t.add_column("goal")
    t.add_column("this run")
    t.add_column("", justify="center")
    marks = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]", "n/a": "n/a"}
    for target in doc["targets"]:
        t.add_row(target["name"], target["goal"], target["value"], marks[target["status"]])
    console.print(t)


def render_flood(flood: dict[str, Any], console: Console) -> None:
    """Section 7: the storm's rate in the flood, traced and not, and what became
    of the lifecycle events and the signals in each traced configuration."""
    if not flood.get("available"):
        console.print(f"[bold]7. Flood[/bold]: {flood['reason']}")
        return
    strace = "a getppid() loop under strace" if flood.get("strace") else "no strace (not installed)"
    title = (
        f"7. Flood: the storm with a kill loop and {strace} ({flood['reps']} interleaved reps of "
        f"{flood['seconds']:g} s, proctrace -- FLOOD; ratio to the untraced floods around the same rep)"
    )
    columns: dict[str, Column] = {
        "kill()/s": lambda e: _n(e.get("median_kill_rate")),
        "kill ratio": lambda e: _n(e.get("kill_rate_ratio"), ".3f"),
        "syscalls/s": lambda e: _n(e.get("median_syscall_rate")) if flood.get("strace") else "",
        "others' CPU": _others_cpu,
    }
    console.print(rate_table(title, flood["storm"], columns))

    accounting = flood["accounting"]
    t = Table(title="7. Flood: events and signals, all runs of each configuration")
    t.add_column("figure")
    for name in accounting:
        t.add_column(name, justify="right")

    def row(label: str, value: Any) -> None:
        t.add_row(label, *(value(a) if a["runs"] else "" for a in accounting.values()))

    row("runs", lambda a: str(a["runs"]))
    row("storm lifecycle events: expected", lambda a: f"{a['lifecycle_expected']:,}")
    row("  received", lambda a: f"{a['lifecycle_received']:,}")
    row("  lost (lifecycle)", lambda a: f"{a['lifecycle_lost']:,}")
    row("signal events streamed", lambda a: f"{a['signals_streamed']:,}")
    row("  suppressed by the rate limit", lambda a: f"{a['folded_rate_limit']:,}")
    row("  ptrace stops folded", lambda a: f"{a['folded_ptrace_stop']:,}")
    row("  lost (signal)", lambda a: f"{a['signal_lost']:,}")
    row("kill loop: kill() calls", lambda a: f"{a['kill_sent']:,}")
    row("  streamed", lambda a: f"{a['kill_streamed']:,}")
    row("  suppressed", lambda a: f"{a['kill_suppressed']:,}")
    row("  neither (among the signals lost)", lambda a: f"{a['kill_gap']:,}")
    row("  unaccounted", lambda a: f"{a['kill_unaccounted']:,}")
    row("syscalls under strace", lambda a: f"{a['syscalls']:,}")
    row("proctrace's totals: events, lost", lambda a: f"{a['events_reported']:,}, {a['lost_reported']:,}")
    console.print(t)
    console.print(f"Command: {flood['command']}")


def _mib(kb: float | None) -> str:
    return "" if kb is None else f"{kb / 1024:.1f} MiB"


def render_startup(startup: dict[str, Any], console: Console) -> None:
    if startup.get("available") is False:
        console.print(f"[bold]8. Start-up and footprint[/bold]: {startup['reason']}")
        return
    t = Table(
        title=f"8. Start-up and footprint ({startup['reps']} interleaved reps; RSS of every process of the tracer, "
        f"{startup['steady_after_s']:g} s after ready)"
    )
    for col in ("entry point", "ready (median)", "vs bpftrace", "RSS", "peak (tracer)", "peak while starting"):
        t.add_column(col, justify="left" if col == "entry point" else "right")
    for name, figures in startup.items():
        if not isinstance(figures, dict) or "median_ready_s" not in figures:
            continue
        ratio = figures.get("ready_vs_bpftrace")
        t.add_row(
            name,
            _n(figures["median_ready_s"], ".3f") + " s",
            "" if ratio is None else f"{ratio:.2f}x",
            _mib(figures.get("median_rss_kb")),
            _mib(figures.get("max_peak_kb")),
            _mib(figures.get("max_start_peak_kb")),
        )
    console.print(t)
    for name, figures in startup.get("light", {}).items():
        bcc = "imports bcc" if figures.get("imports_bcc") else "no bcc"
        console.print(f"proctrace {name}: peak RSS {_mib(figures.get('peak_kb'))}, {bcc}")


def render_top(top: dict[str, Any], console: Console) -> None:
    if not top.get("available"):
        console.print(f"[bold]9. The live view[/bold]: {top['reason']}")
        return
    top_slow, stream_slow = _n(top.get("slowdown_pct"), "+.1f"), _n(top.get("stream_slowdown_pct"), "+.1f")
    console.print(
        f"[bold]9. The live view[/bold] (--top in a 120x40 tmux pane, {top['runs']} interleaved reps): "
        f"storm slowdown {top_slow}% (the plain stream {stream_slow}% in the same run), {top.get('lost')} lost; "
        f"CPU an event {_n(top.get('cpu_us_per_event'), '.2f')} us (the stream "
        f"{_n(top.get('stream_cpu_us_per_event'), '.2f')} us)"
    )
