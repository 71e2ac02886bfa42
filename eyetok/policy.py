"""Routing policy: severity channel x business-hours window -> destinations.

Every tenant has a policy of the same shape; the ADR's four Slack channels are the
shipped default. A policy is pure data; :func:`destinations_for` reads it.
"""

from __future__ import annotations

import msgspec

from eyetok.business_hours import ET_BUSINESS_HOURS, BusinessWindow
from eyetok.messages import Destination, SevChannel


class Route(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One destination: a configured sink (by id) and the target inside it."""

    sink: str
    target: str


DEFAULT_SLACK_CHANNELS: dict[SevChannel, str] = {
    SevChannel.SEV1: "#raxx-ops-alert-SEV1",
    SevChannel.SEV2: "#raxx-ops-alert-SEV2",
    SevChannel.SEV2_5: "#raxx-ops-alert-SEV2.5",
    SevChannel.SEV3: "#raxx-ops-alert-SEV3",
}


def _default_routes() -> dict[SevChannel, tuple[Route, ...]]:
    return {
        channel: (Route(sink="slack", target=name),)
        for channel, name in DEFAULT_SLACK_CHANNELS.items()
    }


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where each SEV channel goes, judged in the tenant's own business-hours window."""

    business_hours: BusinessWindow = ET_BUSINESS_HOURS
    routes: dict[SevChannel, tuple[Route, ...]] = msgspec.field(default_factory=dict)


DEFAULT_POLICY = Policy(routes=_default_routes())  # the operator's: the ADR's four channels
EMPTY_POLICY = Policy()  # a tenant with no routes of its own: recorded, not delivered


def destinations_for(
    policy: Policy, channel: SevChannel | None, sink_types: dict[str, str]
) -> tuple[Destination, ...]:
    """The destinations of ``channel`` under ``policy``; ``sink_types`` maps sink id -> type."""
    routes = policy.routes.get(channel) if channel is not None else None
    if not routes:  # no channel, or one routed nowhere (a tenant without routes: all)
        return ()
    return tuple(
        Destination(sink_id=route.sink, sink_type=sink_types[route.sink], target=route.target)
        for route in routes
    )
