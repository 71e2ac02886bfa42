"""The sink contract. A sink answers one question about each attempt: did it land, may it
be retried (and after how long), or will it never work as it is?

``render`` is pure (incident -> payload); ``send`` does the I/O and never raises for an
expected failure: it classifies it.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from eyetok.messages import Deliver


class Delivered(msgspec.Struct, frozen=True, kw_only=True):
    external_ref: str = ""  # the destination's own id for what we sent (Slack ts, ...)


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    after: float | None = None  # seconds the destination asked us to wait (Retry-After)


class Permanent(msgspec.Struct, frozen=True, kw_only=True):
    reason: str


Outcome = Delivered | Retry | Permanent


class Sink(Protocol):
    sink_id: str
    sink_type: str
    rate_per_target: float | None  # messages per second per target; None: unlimited

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> object:
        """The payload for ``deliver`` (threaded under ``thread_ref`` where the sink can)."""
        ...

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        """Attempt one send; classify the result."""
        ...

    def threads(self) -> bool:
        """Whether an incident's later messages go into its first message's thread."""
        ...

    async def aclose(self) -> None:
        """Release connections (the daemon calls it once, at shutdown)."""
        ...
