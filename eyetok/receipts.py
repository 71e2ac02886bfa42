"""The drill receipt: the one-page record of a drill (design section 7, issue 7).

The harness fills it in step by step; the daemon keeps it (``drill_receipts``, through
``POST /api/v1/drills/receipts``); the operator reads it. A step says what was expected,
what was observed, the verdict, how long the observation took, and which deliveries (the
outbox row ids) it saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Verdict = Literal["pass", "fail", "skipped"]


class Step(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scenario: str
    name: str
    expectation: str
    observation: str
    verdict: Verdict
    latency_ms: float | None = None  # from the step's cause to its observation
    delivery_ids: tuple[str, ...] = ()


class Receipt(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    receipt_id: str
    scenario: str  # a scenario's name, or "all"
    tenant: str  # the drill tenant
    daemon_url: str
    daemon_version: str
    started_at: datetime
    finished_at: datetime
    verdict: Literal["pass", "fail", "interrupted"]  # interrupted: Ctrl-C, steps so far
    steps: tuple[Step, ...]
    delivery_ids: tuple[str, ...] = ()  # every delivery the steps saw, in order
    flavour: str | None = None  # the monthly drill's flavour this scenario is, if one
    monthly_slot: datetime | None = None  # the schedule's slot, when the daemon ran it

    def failed_steps(self) -> list[str]:
        return [f"{s.scenario}/{s.name}" for s in self.steps if s.verdict == "fail"]


def decode_receipt(body: bytes) -> Receipt:
    """A receipt from JSON; :class:`msgspec.ValidationError` names the bad field."""
    return msgspec.json.decode(body, type=Receipt)


def encode_receipt(receipt: Receipt) -> bytes:
    return msgspec.json.format(msgspec.json.encode(receipt), indent=2)
