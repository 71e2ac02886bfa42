"""Explain routing at a given instant, without sending or recording anything.

``POST /api/v1/explain`` answers with this: an alert body as a hook would take it (a
probe verdict or a generic alert), for one tenant, judged as if it arrived at ``at``. It
is what ``eyetok replay --explain --at`` does for Sentry payloads, asked of the running
daemon instead (its configuration, its recognisers, its tenants' business hours), so a
drill can check the DST edges of the loudness table through the front door. Each alert
is judged as new to EyeTok: the explain API does not consult the open or recently
resolved incidents the daemon knows, and every explanation says so in ``assumed`` rather
than claim more than it knows.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from eyetok.config import Settings
from eyetok.errors import MalformedPayloadError, UnknownTenantError
from eyetok.policy import destinations_for
from eyetok.severity import Why, classify, facts_of, why
from eyetok.sources import generic, probe

EXPLAINABLE = ("probe", "generic")

# What every explanation assumes instead of asking the incidents actor (see the docstring).
ASSUMED = "new to EyeTok"


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """How one alert would be routed at ``at``."""

    tenant: str
    at: str  # the instant, UTC, ISO-8601
    zone: str  # the zone the tenant's business hours are judged in
    local_time: str  # ``at`` in that zone, ISO-8601 with its offset
    business_hours: bool
    severity: str
    rule: str
    sev_channel: str | None
    destinations: list[str]  # "sink_id:target"
    title: str
    why: Why  # the rule, what held, and the first failure of each louder rule above it
    # What the judgment assumed rather than knew: the open and recently resolved incidents
    # are not consulted, so the alert is judged as if EyeTok had never seen its key.
    assumed: str = ASSUMED


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant that names its offset (``Z`` or ``-05:00``)."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedPayloadError(f"at {text!r} is not ISO-8601") from exc
    if at.tzinfo is None:
        raise MalformedPayloadError(f"at {text!r} needs an offset (e.g. -05:00 or Z)")
    return at


def explain(
    settings: Settings, *, tenant_id: str, hook: str, body: bytes, at: datetime
) -> list[Explanation]:
    """One explanation per alert in ``body`` (a hook body: one alert or an array)."""
    tenant = settings.tenants.get(tenant_id)
    if tenant is None:
        raise UnknownTenantError(f"unknown tenant {tenant_id!r}")
    ids = iter(range(1_000_000))

    def new_id() -> str:
        return f"explain-{next(ids)}"

    if hook == "probe":
        signals = probe.normalise(body, tenant=tenant_id, received_at=at, new_id=new_id)
    elif hook == "generic":
        signals = generic.normalise(
            body,
            tenant=tenant_id,
            received_at=at,
            new_id=new_id,
            recognisers=settings.recognisers,
        )
    else:
        raise MalformedPayloadError(f"hook {hook!r} is not one of {', '.join(EXPLAINABLE)}")
    window = tenant.policy.business_hours
    local = at.astimezone(ZoneInfo(window.zone))
    out = []
    for signal in signals:
        routing = classify(signal, known=False, window=window)
        destinations = destinations_for(tenant.policy, routing.sev_channel, settings.sink_types())
        out.append(
            Explanation(
                tenant=tenant_id,
                at=signal.received_at.astimezone(ZoneInfo("UTC")).isoformat(),
                zone=window.zone,
                local_time=local.isoformat(),
                business_hours=routing.business_hours,
                severity=routing.severity.value,
                rule=routing.rule,
                sev_channel=routing.sev_channel.value if routing.sev_channel else None,
                destinations=[f"{d.sink_id}:{d.target}" for d in destinations],
                title=signal.title,
                why=why(facts_of(signal, known=False)),
            )
        )
    return out
