"""A hint repeats at most once per period per key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eyetok.hints import OncePer, verify_fix

T0 = datetime(2026, 12, 4, 18, tzinfo=UTC)


def test_a_hint_is_given_once_per_hour_per_sink() -> None:
    hints = OncePer(timedelta(hours=1))
    assert hints.due("slack", T0)
    assert not hints.due("slack", T0 + timedelta(minutes=59, seconds=59))
    assert hints.due("acme-hook", T0 + timedelta(minutes=1))  # another sink: its own hour
    assert hints.due("slack", T0 + timedelta(hours=1))
    assert not hints.due("slack", T0 + timedelta(hours=1, minutes=30))


def test_the_fix_is_the_verify_command() -> None:
    assert verify_fix("slack") == "python3 -m uv run eyetok verify slack"
