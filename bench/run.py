"""Benchmark of the portal against the upstream simulator; prints one line per scenario.

    .venv/bin/python bench/run.py [--scenario NAME ...] [--time-scale 0.01] [--quick]

See bench/README.md for what each figure means and the targets.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
