"""Steps: each names what it expects, observes what happened, and gives a verdict.

A scenario calls :meth:`Steps.check` with an async observation that returns an
:class:`Observed`; anything the observation raises about the daemon or the peers (an
unexpected answer, a timeout) fails that step with the error as its observation, and
the scenario goes on to its next step, so a receipt always lists every step.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import httpx
import trio

from eyetok.clock import Clock
from eyetok.receipts import Receipt, Step
from harness.front_door import FrontDoorError

POLL_S = 0.1
T = TypeVar("T")


@dataclass(frozen=True)
class Observed:
    ok: bool
    observation: str
    delivery_ids: tuple[str, ...] = ()
    since: datetime | None = None  # the cause, for the step's latency (default: step start)


class StepFailed(Exception):
    """Raised inside an observation to fail the step with this text."""


async def poll(
    look: Callable[[], Awaitable[T | None]], *, until: datetime, clock: Clock
) -> T | None:
    """``look()`` every ``POLL_S`` until it returns something, or the clock reads
    ``until`` (then the last look's None)."""
    while True:
        found = await look()
        if found is not None:
            return found
        if clock.now() >= until:
            return None
        await trio.sleep(POLL_S)


_MARKS = {"pass": "ok  ", "fail": "FAIL", "skipped": "skip"}


@dataclass
class Steps:
    scenario: str
    clock: Clock
    steps: list[Step] = field(default_factory=list)
    say: Callable[[str], None] | None = None  # one progress line per step as it ends

    def _record(self, step: Step) -> None:
        self.steps.append(step)
        if self.say is not None:
            took = f" ({step.latency_ms / 1000:.1f} s)" if step.latency_ms is not None else ""
            self.say(f"{_MARKS[step.verdict]} {step.scenario}/{step.name}{took}")

    async def check(
        self, name: str, expectation: str, observe: Callable[[], Awaitable[Observed]]
    ) -> Observed:
        started = self.clock.now()
        try:
            seen = await observe()
        except (StepFailed, FrontDoorError, httpx.HTTPError, KeyError, ValueError) as exc:
            text = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            seen = Observed(ok=False, observation=text)
        cause = seen.since or started
        latency = (self.clock.now() - cause).total_seconds() * 1000.0
        self._record(
            Step(
                scenario=self.scenario,
                name=name,
                expectation=expectation,
                observation=seen.observation,
                verdict="pass" if seen.ok else "fail",
                latency_ms=round(latency, 1),
                delivery_ids=seen.delivery_ids,
            )
        )
        return seen

    def skip(self, name: str, expectation: str, why: str) -> None:
        self._record(
            Step(
                scenario=self.scenario,
                name=name,
                expectation=expectation,
                observation=f"skipped: {why}",
                verdict="skipped",
            )
        )


def new_receipt_id(at: datetime) -> str:
    return f"drill_{at:%Y%m%dT%H%M%SZ}_{secrets.token_hex(4)}"


def receipt_of(
    *,
    scenario: str,
    tenant: str,
    url: str,
    version: str,
    started: datetime,
    finished: datetime,
    steps: list[Step],
) -> Receipt:
    ids: list[str] = []
    for step in steps:
        ids.extend(d for d in step.delivery_ids if d not in ids)
    return Receipt(
        receipt_id=new_receipt_id(started),
        scenario=scenario,
        tenant=tenant,
        daemon_url=url,
        daemon_version=version,
        started_at=started,
        finished_at=finished,
        verdict="fail" if any(s.verdict == "fail" for s in steps) else "pass",
        steps=tuple(steps),
        delivery_ids=tuple(ids),
    )
