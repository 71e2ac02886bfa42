"""``python bench/ingest.py [options]``: the ingest benchmark, the package ``bench/ingest/``
run as a script (the same as ``python -m bench.ingest`` from the repository's root)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest.cli import main  # noqa: E402

sys.exit(main())
