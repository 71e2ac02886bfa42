"""``uv run python -m bench.ingest [options]`` (from the repository's root)."""

import sys

from bench.ingest.cli import main

sys.exit(main())
