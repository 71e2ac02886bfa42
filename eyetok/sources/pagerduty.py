"""PagerDuty v3 webhooks, pure: a signed body -> what a human decided in PagerDuty.

Wire format (developer.pagerduty.com, "V3 Webhooks" and "Verifying Signatures"):

* the body is one JSON object ``{"event": {...}}``; ``event.event_type`` says what
  happened (``incident.acknowledged``, ``incident.resolved``, ``incident.unacknowledged``,
  ``incident.triggered``, ``service.updated``, ...), ``event.agent`` who did it (a
  ``user_reference`` with ``id`` and ``summary``, the person's name; null or a
  service/integration reference when PagerDuty itself did it), ``event.data`` the
  resource (for incident events: the incident, with ``id``, ``status``, ``html_url`` and
  ``incident_key``);
* ``X-PagerDuty-Signature`` holds one or more comma-separated ``v1=<hex>`` values (more
  than one while a subscription's secret rotates): each the HMAC-SHA256 of the raw body
  under a signing secret. One match with ours is enough.

How an event finds EyeTok's incident: an incident PagerDuty opened from an Events API v2
trigger carries that trigger's ``dedup_key`` as its ``incident_key``, and EyeTok's dedup
key is ``eyetok:{tenant}:{incident_id}`` (``actors/sinks/pagerduty/render.py``). A key
of another tenant, or not EyeTok's at all, names no incident of this tenant's.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

import msgspec

from eyetok.decoding import decode_json
from eyetok.errors import SignatureError

SIGNATURE_HEADER = "x-pagerduty-signature"
MAX_NAME = 120  # an agent's name as EyeTok records it

Decision = Literal["acknowledge", "resolve"]
_DECISIONS: dict[str, Decision] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}


class _Reference(msgspec.Struct, kw_only=True):
    id: str = ""
    type: str = ""
    summary: str = ""


class _Data(msgspec.Struct, kw_only=True):
    id: str = ""
    type: str = ""
    incident_key: str | None = None
    status: str = ""
    html_url: str = ""


class _Event(msgspec.Struct, kw_only=True):
    id: str = ""
    event_type: str
    resource_type: str = ""
    agent: _Reference | None = None
    data: _Data | None = None


class _Envelope(msgspec.Struct, kw_only=True):
    event: _Event


class PagerDutyDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A human's acknowledgement or resolve, made in PagerDuty, of one of our incidents."""

    decision: Decision
    incident_id: str  # EyeTok's
    by: str  # "pagerduty:<name> (<user id>)"
    by_id: str | None  # "pagerduty:<user id>"
    event_id: str
    pagerduty_incident: str  # PagerDuty's incident id (e.g. PGR0VU2)


class NotForUs(msgspec.Struct, frozen=True, kw_only=True):
    """An event EyeTok takes no action on, and why (answered 2xx, logged)."""

    event_type: str
    event_id: str
    reason: str


def sign(body: bytes, secret: str) -> str:
    """The ``v1=<hex>`` signature PagerDuty sends for ``body`` under ``secret``."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: tuple[str, ...]) -> None:
    """Raise :class:`SignatureError` unless one ``v1=`` value of ``header`` is the
    HMAC-SHA256 of ``body`` under one of ``secrets`` (compared in constant time)."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header: not signed by PagerDuty")
    given = [part.strip() for part in header.split(",") if part.strip().startswith("v1=")]
    if not given:
        raise SignatureError(f"{SIGNATURE_HEADER} carries no v1= signature")
    expected = [sign(body, secret) for secret in secrets]
    matched = False
    for value in given:  # every pair is compared: the time does not say which matched
        for candidate in expected:
            matched |= hmac.compare_digest(value.encode(), candidate.encode())
    if not matched:
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not match the body under the subscription's secret"
        )


def incident_of(incident_key: str | None, tenant: str) -> str | None:
    """EyeTok's incident id in a PagerDuty ``incident_key`` of ``tenant``'s (None: the
    key is not one EyeTok sent for this tenant)."""
    prefix = f"eyetok:{tenant}:"
    if not incident_key or not incident_key.startswith(prefix):
        return None
    rest = incident_key.removeprefix(prefix)
    if not rest.startswith("inc_") or ":" in rest:
        return None  # a notice's key, a hashed key, or another tenant's (a ':' in the rest)
    return rest


def _agent(agent: _Reference | None) -> tuple[str, str | None]:
    if agent is None or not agent.id:
        return "pagerduty", None
    name = " ".join(agent.summary.split())[:MAX_NAME] or agent.type or "someone"
    return f"pagerduty:{name} ({agent.id})", f"pagerduty:{agent.id}"


def decode(body: bytes, tenant: str) -> PagerDutyDecision | NotForUs:
    """What a (verified) v3 webhook body asks of ``tenant``'s incidents. A body that is
    not a v3 webhook raises :class:`MalformedPayloadError` (HTTP 400)."""
    event = decode_json(body, _Envelope, "a PagerDuty v3 webhook").event
    decision = _DECISIONS.get(event.event_type)
    if decision is None:
        return NotForUs(
            event_type=event.event_type,
            event_id=event.id,
            reason="EyeTok acts only on incident.acknowledged and incident.resolved",
        )
    data = event.data or _Data()
    incident_id = incident_of(data.incident_key, tenant)
    if incident_id is None:
        return NotForUs(
            event_type=event.event_type,
            event_id=event.id,
            reason=f"incident_key {data.incident_key!r} is not one EyeTok sent for tenant "
            f"{tenant!r} (eyetok:{tenant}:<incident id>)",
        )
    by, by_id = _agent(event.agent)
    return PagerDutyDecision(
        decision=decision,
        incident_id=incident_id,
        by=by,
        by_id=by_id,
        event_id=event.id,
        pagerduty_incident=data.id,
    )
