"""``python bench/batched.py [options]``: the batched hooks benchmark, the package
``bench/batched/`` run as a script (the same as ``python -m bench.batched`` from the
repository's root)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.batched.cli import main  # noqa: E402

sys.exit(main())
