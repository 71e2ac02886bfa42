"""The health board: how each long-lived component is doing, for ``/readyz``.

A component (``"mirror"``, ...) has exactly one writer, the actor that owns it; anyone may
read. Values are frozen, so a reader never sees half an update. ``since`` is when the
component entered its current state (it does not move while only the detail changes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

HealthState = Literal["ok", "degraded", "starting"]

_RANK: dict[HealthState, int] = {"ok": 0, "starting": 1, "degraded": 2}


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    state: HealthState
    detail: str
    since: datetime


class HealthBoard:
    def __init__(self) -> None:
        self._components: dict[str, ComponentHealth] = {}

    def set(self, component: str, state: HealthState, detail: str = "", *, at: datetime) -> None:
        """Record ``component``'s state; ``at`` becomes ``since`` only on a state change."""
        current = self._components.get(component)
        since = current.since if current is not None and current.state == state else at
        self._components[component] = ComponentHealth(state=state, detail=detail, since=since)

    def get(self, component: str) -> ComponentHealth | None:
        return self._components.get(component)

    def worst(self) -> HealthState:
        """The worst state on the board (``ok`` when empty)."""
        states = [c.state for c in self._components.values()]
        return max(states, key=_RANK.__getitem__, default="ok")

    def snapshot(self) -> dict[str, dict[str, str]]:
        """``{component: {"state", "detail", "since"}}``, JSON-ready, sorted by name."""
        return {
            name: {"state": c.state, "detail": c.detail, "since": c.since.isoformat()}
            for name, c in sorted(self._components.items())
        }


class HeldCount(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    oldest: datetime  # when the oldest held delivery was planned


class SinkBoard:
    """Every configured sink (file and tenant API) and the deliveries held for its
    verification, for ``/api/v1/sinks``. One writer: the delivery actor."""

    def __init__(self) -> None:
        self._configured: dict[str, str] = {}
        self._held: dict[str, HeldCount] = {}

    def configure(self, sink_types: dict[str, str]) -> None:
        self._configured = dict(sink_types)

    def hold(self, held: dict[str, HeldCount]) -> None:
        self._held = dict(held)

    def configured(self) -> dict[str, str]:
        """``{sink_id: sink_type}``."""
        return dict(self._configured)

    def held(self, sink_id: str) -> HeldCount | None:
        return self._held.get(sink_id)

    def held_all(self) -> dict[str, HeldCount]:
        return dict(self._held)
