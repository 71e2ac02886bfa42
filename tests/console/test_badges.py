"""One fixed colour per canonical label, and the stylesheet carries exactly that table."""

from __future__ import annotations

from eyetok.console.badges import BADGE_COLOURS, badge_class, badge_css
from eyetok.console.routes import stylesheet
from eyetok.messages import SevChannel


def test_every_canonical_label_has_its_own_colour() -> None:
    assert list(BADGE_COLOURS) == ["SEV1", "SEV2", "SEV2.5", "SEV3"]
    assert [c.value for c in SevChannel] == list(BADGE_COLOURS)
    backgrounds = [bg for bg, _ in BADGE_COLOURS.values()]
    assert len(set(backgrounds)) == len(backgrounds)


def test_the_stylesheet_has_one_rule_per_label_from_the_table() -> None:
    css = stylesheet().decode()
    assert css.endswith(badge_css())
    for label, (bg, fg) in BADGE_COLOURS.items():
        rule = f".{badge_class(label)} {{ background: {bg}; color: {fg}; }}"
        assert css.count(f".{badge_class(label)} ") == 1
        assert rule in css
    assert badge_class("SEV2.5") == "sev-SEV2-5"
