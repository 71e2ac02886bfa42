"""The README's Console section: its screenshot is there, and the figures it names are the
ones ``/metrics`` exposes."""

from __future__ import annotations

import re
from pathlib import Path

from eyetok.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Console") : README.index("## Logs")]


def test_the_screenshot_is_committed() -> None:
    [image] = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", SECTION)
    assert image.startswith("docs/")
    assert (ROOT / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_metrics_named_are_the_metrics_exposed() -> None:
    named = set(re.findall(r"`(eyetok_[a-z_]+)`", SECTION))
    exposed = {
        sample.name.removesuffix("_total")
        for family in METRICS.registry.collect()
        for sample in family.samples
    } | {family.name for family in METRICS.registry.collect()}
    scraped_only = {"eyetok_inbox_depth", "eyetok_actor_restarts_total"}  # per daemon
    for name in named - scraped_only:
        assert name.removesuffix("_total") in exposed, name
    assert "FLAG_CONSOLE_INCIDENTS" in SECTION
    assert "EYETOK_METRICS_TOKEN" in SECTION
