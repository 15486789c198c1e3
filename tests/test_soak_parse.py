"""The soak's parsers (proctrace.bench.soak), on canned text: /proc/<pid>/status,
proctrace's stderr, the spawner's progress file."""

from __future__ import annotations

import pytest
from proctrace.bench import soak

STATUS = """\
Name:\tpython3
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  312004 kB
VmSize:\t  311192 kB
VmHWM:\t  153508 kB
VmRSS:\t  152780 kB
RssAnon:\t   98000 kB
Threads:\t1
"""


def test_vmrss_is_read_in_kib():
    assert soak.vmrss_kib(STATUS) == 152780


def test_vmrss_of_a_process_without_memory_is_none():
    kernel_thread = "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n"
    assert soak.vmrss_kib(kernel_thread) is None


def test_vmrss_in_an_unknown_unit_is_an_error():
    with pytest.raises(ValueError, match="unit"):
        soak.vmrss_kib("VmRSS:\t 12 MB\n")


def test_totals_come_from_the_last_summary_line():
    stderr = (
        "proctrace: tracing /tmp/spawner and its descendants (ring buffer); Ctrl-C to stop\n"
        "Possibly lost 12 samples\n"
        "proctrace: 4000013 events, 27 lost\n"
    )
    assert soak.parse_totals(stderr) == (4000013, 27)


def test_totals_read_past_the_losses_by_class():
    assert soak.parse_totals("proctrace: 4000013 events, 27 lost (2 lifecycle, 25 signal)\n") == (4000013, 27)


def test_no_summary_line_gives_no_totals():
    assert soak.parse_totals("proctrace: /x/rec: cannot write the recording: the disk is full\n") is None


def test_progress_is_a_little_endian_u64_and_zero_before_the_spawner_writes():
    assert soak.read_progress((1_000_000).to_bytes(8, "little") + (3).to_bytes(8, "little")) == 1_000_000
    assert soak.read_progress(b"") == 0


def test_report_summary_names_start_end_and_peak():
    report = soak.Report()
    for seconds, processes, rss in [(0.5, 10, 150_000), (5.5, 20_000, 160_000), (10.5, 40_000, 155_000)]:
        report.add(soak.Sample(seconds, processes, rss))
    (line,) = report.summary()
    assert line.startswith("RSS start 146.5 MiB (at 10 processes), end 151.4 MiB (at 40,000)")
    assert line.endswith("max 156.2 MiB (at 20,000)")


def test_totals_read_past_undecodable_events():
    assert soak.parse_totals("proctrace: 10 events, 0 lost, 2 undecodable\n") == (10, 0)
