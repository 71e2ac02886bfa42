"""The ingest bench (a package since its split) starts both ways the docs show it, with
the same options: ``python bench/ingest.py`` and ``python -m bench.ingest``. Only the
option parser runs here; the bench itself measures, outside the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ("--requests", "--concurrency", "--kill", "--fresh-data-dir", "--durability")
MORE = ("--skip-durability", "--database-url", "--sink", "--py-spy", "--trickle", "--json")


def _help(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, *argv, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_script_and_the_module_take_the_same_options() -> None:
    script = _help("bench/ingest.py")
    module = _help("-m", "bench.ingest")
    assert script == module
    for option in (*OPTIONS, *MORE):
        assert option in script, option
