"""Hints to the operator that repeat at a bearable pace: the same hint about the same
thing at most once per period (one hour by default), on the injected clock.

The delivery gate uses it for a refusal for want of a handshake: the log says, once per
sink per hour, the command that fixes it (:func:`verify_fix`), not on every refusal.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class OncePer:
    """Says whether a hint about ``key`` is due: the first time, then again only once
    ``every`` has passed since it was last given. Its memory is bounded by the keys it
    is asked about (sink ids: a few hundred at most)."""

    def __init__(self, every: timedelta = timedelta(hours=1)) -> None:
        self.every = every
        self._last: dict[str, datetime] = {}

    def due(self, key: str, now: datetime) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        return True


def verify_fix(sink_id: str) -> str:
    """The command that starts a sink's ownership handshake and says what to do next."""
    return f"python3 -m uv run eyetok verify {sink_id}"
