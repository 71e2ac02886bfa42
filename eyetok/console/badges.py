"""The severity badges: one fixed colour per canonical label (ADR-0091's SEV channels).

This table is the only place the colours live: the stylesheet's badge rules are
generated from it (:func:`badge_css`), so a page and the CSS cannot disagree."""

from __future__ import annotations

from eyetok.messages import SevChannel

# label -> (background, text): each pair has a contrast ratio above 4.5:1
BADGE_COLOURS: dict[str, tuple[str, str]] = {
    SevChannel.SEV1.value: ("#b00020", "#ffffff"),
    SevChannel.SEV2.value: ("#c2410c", "#ffffff"),
    SevChannel.SEV2_5.value: ("#8a6d00", "#ffffff"),
    SevChannel.SEV3.value: ("#1d4ed8", "#ffffff"),
}
NO_CHANNEL = "audit"  # an incident with no SEV channel (audit log only)
NO_CHANNEL_COLOURS = ("#4b5563", "#ffffff")


def badge_class(label: str | None) -> str:
    """The CSS class of a label's badge (``sev-SEV2-5`` for SEV2.5)."""
    return "sev-" + (label or NO_CHANNEL).replace(".", "-")


def badge_css() -> str:
    rules = [
        f".{badge_class(label)} {{ background: {bg}; color: {fg}; }}"
        for label, (bg, fg) in BADGE_COLOURS.items()
    ]
    bg, fg = NO_CHANNEL_COLOURS
    rules.append(f".{badge_class(None)} {{ background: {bg}; color: {fg}; }}")
    return "\n".join(rules) + "\n"
