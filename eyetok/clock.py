"""Time, injected. The only module allowed to read the ambient wall clock.

A :class:`Clock` answers ``now()`` (aware UTC) and sleeps until a wall time. Actors ask
their clock, never ``datetime.now``; tests anchor wall time to trio's clock so
``MockClock(autojump_threshold=0)`` moves both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio

# The system clock re-reads wall time at least this often while sleeping, so a long
# sleep across a wall-clock step (NTP, suspend) wakes at the right wall time.
_SLICE_S = 30.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current wall time, timezone-aware, in UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the wall clock reads ``when``."""
        ...


class SystemClock:
    """The real wall clock; sleeps with trio in slices and re-reads wall time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await trio.sleep(min(remaining, _SLICE_S))


class TrioWallClock:
    """Wall time anchored to trio's clock: ``now = anchor + (trio time - trio time at anchor)``.

    Under ``MockClock`` the wall clock moves exactly as far as trio's does, so hours of
    schedule run in milliseconds. Must be created and used inside ``trio.run``.
    """

    def __init__(self, anchor: datetime) -> None:
        if anchor.tzinfo is None:
            raise ValueError("TrioWallClock needs an aware anchor datetime")
        self._anchor = anchor.astimezone(UTC)
        self._t0 = trio.current_time()

    def now(self) -> datetime:
        return self._anchor + timedelta(seconds=trio.current_time() - self._t0)

    async def sleep_until(self, when: datetime) -> None:
        await trio.sleep_until(self._t0 + (when - self._anchor).total_seconds())


class FixedClock:
    """A wall clock that reads one instant until told otherwise (replay ``--at``)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    async def sleep_until(self, when: datetime) -> None:
        if when > self._at:
            self._at = when
        await trio.lowlevel.checkpoint()
