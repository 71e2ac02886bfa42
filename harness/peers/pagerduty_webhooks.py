"""The fake PagerDuty's way back: v3 webhooks, signed as PagerDuty signs them.

A person acknowledges or resolves an incident in PagerDuty; PagerDuty POSTs one event to
each webhook subscription's URL (developer.pagerduty.com, "V3 Webhooks", "Verifying
Signatures"):

* the body is ``{"event": {"id", "event_type", "resource_type": "incident",
  "occurred_at", "agent": {user_reference}, "client": {"name": "PagerDuty"},
  "data": {the incident: "id", "type": "incident", "number", "status", "incident_key",
  "title", "html_url", "self", "urgency", ...}}}``; an incident opened by an Events API v2
  trigger has that trigger's ``dedup_key`` as its ``incident_key``;
* ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]``: the HMAC-SHA256 of the body under each
  of the subscription's secrets (two while a secret rotates);
* ``Content-Type: application/json``, ``User-Agent: PagerDuty-Webhook/V3.0``, and
  ``X-Webhook-Id`` / ``X-Webhook-Subscription`` headers.

Standard library only, like every peer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["PagerDutyUser", "Subscription", "WebhookSent", "incident_event", "send", "sign"]

DOMAIN = "https://eyetok-fake.pagerduty.com"
API = "https://api.pagerduty.com"


@dataclass(frozen=True)
class PagerDutyUser:
    """The agent of an event: a PagerDuty user (``id`` like ``PLH1HKV``, ``name``)."""

    id: str
    name: str

    def reference(self) -> dict[str, str]:
        return {
            "html_url": f"{DOMAIN}/users/{self.id}",
            "id": self.id,
            "self": f"{API}/users/{self.id}",
            "summary": self.name,
            "type": "user_reference",
        }


@dataclass(frozen=True)
class Subscription:
    """A v3 webhook subscription: where events go and the secrets that sign them."""

    url: str
    secrets: tuple[str, ...]
    id: str = "PSUB000"


@dataclass(frozen=True)
class WebhookSent:
    """One delivery and its receiver's answer."""

    event_type: str
    body: bytes
    status: int  # 0: no answer (connection refused, timeout)
    answer: Any


def sign(body: bytes, secrets: tuple[str, ...]) -> str:
    """``X-PagerDuty-Signature``: one ``v1=`` value per secret, comma-separated."""
    return ",".join(
        "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets
    )


def _incident_id(number: int) -> str:
    return f"PINC{number:04d}"


def incident_event(
    event_type: str,
    *,
    number: int,
    incident_key: str,
    status: str,
    title: str,
    agent: PagerDutyUser | None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The body PagerDuty sends for an incident event (``incident.acknowledged``, ...)."""
    incident = _incident_id(number)
    at = (occurred_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": at.replace("+00:00", "Z"),
            "agent": agent.reference() if agent is not None else None,
            "client": {"name": "PagerDuty"},
            "data": {
                "id": incident,
                "type": "incident",
                "self": f"{API}/incidents/{incident}",
                "html_url": f"{DOMAIN}/incidents/{incident}",
                "number": number,
                "status": status,
                "incident_key": incident_key,
                "created_at": at.replace("+00:00", "Z"),
                "title": title,
                "urgency": "high",
                "priority": None,
                "resolve_reason": None,
            },
        }
    }


def send(
    subscription: Subscription, event: dict[str, Any], *, timeout: float = 10.0
) -> WebhookSent:
    """POST ``event`` to the subscription's URL, signed; the receiver's answer."""
    body = json.dumps(event, separators=(",", ":")).encode()
    request = urllib.request.Request(
        subscription.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-PagerDuty-Signature": sign(body, subscription.secrets),
            "X-Webhook-Id": str(uuid.uuid4()),
            "X-Webhook-Subscription": subscription.id,
        },
    )
    event_type = str(event.get("event", {}).get("event_type", ""))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return WebhookSent(event_type, body, answer.status, json.loads(answer.read() or b"{}"))
    except urllib.error.HTTPError as refused:
        text = refused.read()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text.decode("utf-8", "replace")
        return WebhookSent(event_type, body, refused.code, parsed)
    except (urllib.error.URLError, OSError) as exc:
        return WebhookSent(event_type, body, 0, str(exc))
