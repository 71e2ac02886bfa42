"""The greps the docs tell an operator to run match the log lines EyeTok writes."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
import structlog

from eyetok import log

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "deploy/NOTES.md")
_GREP = re.compile(r"grep '(?P<pattern>[^']+)'")


def _greps() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        found += [(doc, m["pattern"]) for m in _GREP.finditer(text)]
    return found


def _rendered(event: str) -> str:
    """One log line exactly as ``eyetok run`` writes it."""
    out = io.StringIO()
    log.configure("info")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        log.get("delivery").error(event, tenant="acme", sink="slack", attempts=8)
    finally:
        log.configure("info")
    return out.getvalue()


def test_the_docs_have_greps_to_check() -> None:
    assert ("deploy/NOTES.md", '"event":"delivery_dead"') in _greps()


@pytest.mark.parametrize(("doc", "pattern"), _greps())
def test_each_grep_in_the_docs_matches_a_real_log_line(doc: str, pattern: str) -> None:
    event = re.search(r'"event":"(?P<name>[^"]+)"', pattern)
    assert event is not None, f"{doc}: grep '{pattern}' names no event"
    line = _rendered(event["name"])
    assert json.loads(line)["event"] == event["name"]
    grep = subprocess.run(["grep", pattern], input=line, capture_output=True, text=True)
    assert grep.returncode == 0, f"{doc}: grep '{pattern}' does not match {line!r}"
    # and the event is one EyeTok really logs
    sources = subprocess.run(
        ["grep", "-rl", f'"{event["name"]}"', "actors", "eyetok", "state", "schedules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert sources.stdout, f"{doc}: no EyeTok module logs {event['name']!r}"
