#!/usr/bin/env python3
"""Memory soak of the process table: `python3 scripts/soak_timeline.py [--processes N] [--keep N]`.

A thin entry point to `python -m proctrace.bench.table_soak`, run with the
checkout's virtualenv (where proctrace is installed; ./scripts/setup makes it).
"""

import os
import sys
from pathlib import Path

python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
if not python.exists():
    sys.exit(f"soak_timeline: {python} is missing; run ./scripts/setup first")
os.execv(python, [str(python), "-m", "proctrace.bench.table_soak", *sys.argv[1:]])
