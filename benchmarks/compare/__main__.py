"""`python -m benchmarks.compare ...`: the comparison run (benchmarks/compare/run.py)."""

import sys

from benchmarks.compare.run import main

sys.exit(main())
