"""``python -m proctrace.bench``: run the benchmark (see proctrace.bench.cli)."""

import sys

from proctrace.bench.cli import main

sys.exit(main())
