import sys

from proctrace.cli import main

sys.exit(main())
