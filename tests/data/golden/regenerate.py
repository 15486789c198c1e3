"""Remake the golden recording and the outputs expected from it; run by hand only, never by the tests.

    sudo .venv/bin/python tests/data/golden/regenerate.py --proctrace PROCTRACE record
    .venv/bin/python tests/data/golden/regenerate.py --proctrace PROCTRACE expect

`record` traces workload.py live with PROCTRACE (root) and writes session.rec with
its header cut down: no /proc snapshot (it lists every process of the machine,
with command lines) and a neutral hostname. `expect` rewrites expected/ with
what PROCTRACE prints for each case of tests/test_golden.py. PROCTRACE is the
`proctrace` executable of the version whose outputs are the reference: a new
one only when a change of output is meant (tests/test_golden.py says which).
The interpreter needs pytest, which tests/test_golden.py imports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for test_golden
from test_golden import CASES, EXPECTED, GOLDEN, NEUTRAL_HOSTNAME, RECORDING, run_case

# The system's interpreter, so the workload's exec lines name the same file on any Debian or Ubuntu machine.
WORKLOAD_PYTHON = "/usr/bin/python3"


def without_machine_details(header_line: str) -> str:
    header = json.loads(header_line)
    header["snapshot"] = []
    header["hostname"] = NEUTRAL_HOSTNAME
    return json.dumps(header, ensure_ascii=True, separators=(",", ":")) + "\n"


def record(proctrace: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.rec"
        subprocess.run([proctrace, "-q", "-w", str(raw), "--", WORKLOAD_PYTHON, "workload.py"], cwd=GOLDEN, check=True)
        header, *records = raw.read_text().splitlines(keepends=True)
    RECORDING.write_text(without_machine_details(header) + "".join(records))
    check = subprocess.run([proctrace, "-r", str(RECORDING), "--json"], capture_output=True, check=False)
    if check.returncode != 0 or check.stderr:
        sys.exit(f"{RECORDING} does not read back cleanly: {check.stderr.decode(errors='replace')}")
    print(f"wrote {RECORDING} ({RECORDING.stat().st_size} bytes)")


def expect(proctrace: str) -> None:
    EXPECTED.mkdir(exist_ok=True)
    for stale in EXPECTED.iterdir():
        stale.unlink()
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            outputs = run_case([proctrace], case, Path(scratch))
            if outputs.returncode != 0 or outputs.stderr:
                sys.exit(f"{case.name}: exit {outputs.returncode}: {outputs.stderr.decode(errors='replace')}")
            case.expected_stdout.write_bytes(outputs.stdout)
            if case.expected_export is not None:
                if outputs.export is None:
                    sys.exit(f"{case.name}: no trace was exported")
                case.expected_export.write_bytes(outputs.export)
            print(f"wrote expected/{case.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proctrace", required=True, help="the proctrace executable whose outputs are the reference")
    parser.add_argument("step", choices=("record", "expect"))
    args = parser.parse_args()
    (record if args.step == "record" else expect)(args.proctrace)


if __name__ == "__main__":
    main()
