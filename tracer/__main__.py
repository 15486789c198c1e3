"""`python -m proctrace`: the command line."""

import sys

from proctrace.cli import main

sys.exit(main())
