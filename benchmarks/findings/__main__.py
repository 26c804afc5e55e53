"""`python -m benchmarks.findings ...`: the findings benchmark (benchmarks/findings/cli.py)."""

import sys

from benchmarks.findings.cli import main

sys.exit(main())
