"""The ingest and batched benches (packages since their split) start both ways the docs
show them, with the same options: ``python bench/ingest.py`` and ``python -m bench.ingest``,
``python bench/batched.py`` and ``python -m bench.batched``. Only the
option parser runs here; the bench itself measures, outside the test suite."""

from __future__ import annotations

import re
import shlex
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


def test_the_batched_script_and_module_take_the_same_options() -> None:
    script = _help("bench/batched.py")
    assert script == _help("-m", "bench.batched")
    for option in ("--requests", "--source", "--skip-ceiling", "--skip-alertmanager", "--json"):
        assert option in script, option


_SHOWN = re.compile(r"`python bench/(?P<script>\w+)\.py(?P<args>[^`]*)`")


def _shown_commands() -> list[tuple[str, list[str]]]:
    """Every ``python bench/<script>.py ...`` the READMEs show (a span may wrap lines)."""
    found = []
    for doc in ("README.md", "bench/README.md"):
        for m in _SHOWN.finditer((ROOT / doc).read_text(encoding="utf-8")):
            found.append((m["script"], shlex.split(m["args"])))
    return found


def test_every_bench_command_the_docs_show_is_one_its_parser_takes() -> None:
    from bench.batched.cli import _parser as batched_parser
    from bench.ingest.cli import _parser as ingest_parser

    parsers = {"ingest": ingest_parser(), "batched": batched_parser()}
    shown = _shown_commands()
    assert ("batched", ["--source", "alertmanager", "-r", "2000", "--skip-ceiling"]) in shown
    for script, args in shown:
        assert (ROOT / "bench" / f"{script}.py").is_file(), script
        if script in parsers:
            parsers[script].parse_args(args)  # exits (fails the test) on an option it lacks
