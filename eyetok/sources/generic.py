"""The generic source: a small documented JSON alert any tool can send.

``POST /hooks/generic/{tenant}`` takes one alert object or a JSON array of them::

    {
      "title": "Checkout latency over 2 s",     # required, non-empty
      "dedup_key": "checkout-latency",          # required, non-empty: one incident per key
      "severity": "high",                       # optional: critical | high | medium | low | info
      "status": "firing",                       # optional: firing (default) | resolved
      "description": "p95 2.4 s for 10 min",    # optional: the message
      "url": "https://grafana.example/d/abc",   # optional: a link back
      "environment": "production",              # optional
      "tags": {"service": "checkout"},          # optional: string values only
      "level": "error"                          # optional: fatal | error | warning | info | debug
    }

Unknown fields are ignored; wrong types and missing required fields are refused with a
:class:`~eyetok.errors.MalformedPayloadError` naming the JSON path (``$[2].title``).

``status: resolved`` resolves the open incident with the same ``dedup_key`` (a resolve
for a key with no open incident is recorded in the audit log only).

**Severity.** A declared ``severity`` decides, through the canonical table (no rule is
added for generic alerts, so each severity is mapped to the facts of an existing rule;
the rule that matched is named in the answer and in ``replay --explain``):

============  =====================================  ==============================
severity      the signal gets                        canonical rule (severity)
============  =====================================  ==============================
``critical``  level ``fatal``                        ``fatal`` (critical)
``high``      level ``error`` + mark                 ``declared-high`` (high)
              ``declared_high``
``medium``    level ``error``                        ``default`` (medium)
``low``       level ``warning``                      ``warning`` (low)
``info``      level ``info``                         ``info-debug-audit`` (info)
============  =====================================  ==============================

``high`` has a canonical rule of its own, ``declared-high``: the sender, not EyeTok,
judged the alert high (an Alertmanager ``severity`` label, a generic alert's field).
A declared severity is final: the recognisers
(``h12``, ``paper_gate``, ``synthetic_check``) are not consulted. Without ``severity``
the alert is read like a Sentry event: ``level`` (default ``error``; ``critical`` is read
as ``fatal``, ``warn`` as ``warning``) plus whatever the recognisers find in the title,
description and tags; a plain ``error`` then falls to ``default`` (medium).

This module also holds the decoding helpers the probe and Alertmanager sources share
(:func:`decode`, :data:`SEVERITY_FACTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec.structs import replace as _replace

from eyetok.decoding import decode_json
from eyetok.messages import Severity, Signal, SignalKind
from eyetok.recognisers import Recognisers, marks_for
from eyetok.sources.shared import shared_signal

__all__ = [
    "SEVERITY_FACTS",
    "GenericAlert",
    "decode",
    "normalise",
]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Level = Literal["fatal", "critical", "error", "warning", "warn", "info", "debug"]

SEVERITY_FACTS: dict[Severity, tuple[str, frozenset[str]]] = {
    Severity.CRITICAL: ("fatal", frozenset()),
    Severity.HIGH: ("error", frozenset({"declared_high"})),
    Severity.MEDIUM: ("error", frozenset()),
    Severity.LOW: ("warning", frozenset()),
    Severity.INFO: ("info", frozenset()),
}
"""A declared severity as the (level, marks) that make the canonical table yield it."""

_LEVEL_ALIASES = {"critical": "fatal", "warn": "warning"}


class GenericAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One generic alert (unknown fields ignored)."""

    title: NonEmpty
    dedup_key: NonEmpty
    severity: Severity | None = None
    status: Literal["firing", "resolved"] = "firing"
    description: str | None = None
    url: str | None = None
    environment: str | None = None
    tags: dict[str, str] | None = None
    level: Level | None = None


_Payload = GenericAlert | list[GenericAlert]


def normalise(
    body: bytes,
    *,
    tenant: str,
    received_at: datetime,
    new_id: Callable[[], str],
    recognisers: Recognisers,
) -> list[Signal]:
    """Decode one generic alert or an array of them; one :class:`Signal` each."""
    payload: GenericAlert | list[GenericAlert] = decode(body, _Payload, "generic alert")
    alerts = payload if isinstance(payload, list) else [payload]
    shared = shared_signal("generic", tenant=tenant, received_at=received_at)
    return [_signal(alert, shared, new_id, recognisers) for alert in alerts]


def _signal(
    alert: GenericAlert, shared: Signal, new_id: Callable[[], str], recognisers: Recognisers
) -> Signal:
    tags = tuple(alert.tags.items()) if alert.tags else ()
    message = alert.description or ""
    if alert.severity is not None:
        level, marks = SEVERITY_FACTS[alert.severity]
    else:
        raw = alert.level or "error"
        level = _LEVEL_ALIASES.get(raw, raw)
        marks = marks_for(recognisers, title=alert.title, message=message, tags=tags)
    return _replace(
        shared,
        signal_id=new_id(),
        action=alert.status,
        kind=SignalKind.RESOLVE if alert.status == "resolved" else SignalKind.ALERT,
        dedup_key=alert.dedup_key,
        title=alert.title,
        level=level,
        message=message,
        url=alert.url or "",
        environment=alert.environment or "",
        tags=tags,
        marks=marks,
    )


# --- decoding (shared by the probe and Alertmanager sources) ----------------------


def decode(body: bytes, shape: Any, what: str) -> Any:
    """``body`` decoded as ``shape`` by the guarded decoder, or a
    :class:`MalformedPayloadError` that starts with ``what`` and names the JSON path
    (wrong type, missing field, unexpected value) or the byte (malformed JSON)."""
    return decode_json(body, shape, what)
