"""``POST /hooks/pagerduty/{tenant}``: PagerDuty's v3 webhooks, the way back from PagerDuty.

A person who acknowledges or resolves, in PagerDuty, an incident EyeTok paged about
acknowledges or resolves it in EyeTok too, through the same path as a Slack click: the
incident is updated and audited, its Slack thread says who did it (the first post is
rewritten), and its escalation stops. The decoding is :mod:`eyetok.sources.pagerduty`.

Answers: 401 when the tenant has no subscription secret configured (the answer names the
environment variable) or ``X-PagerDuty-Signature`` does not verify; 404 for an unknown
tenant; 400 for a signed body that is not a v3 webhook. Every other event, including one
EyeTok does not act on (another event type, an incident that is not ours or no longer
open, a repeat delivery), is answered 200 with ``acted`` false and the reason, and
logged: PagerDuty retries an answer that is not 2xx, and a retry would change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from quart import Response, request
from quart_trio import QuartTrio

from eyetok import log
from eyetok.config import Tenant
from eyetok.http.bodies import raw_body
from eyetok.http.incident_desk import IncidentDesk
from eyetok.sources import pagerduty


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def add_pagerduty_hooks(app: QuartTrio, tenants: Mapping[str, Tenant], desk: IncidentDesk) -> None:
    logger = log.get("http")

    @app.post("/hooks/pagerduty/<tenant>")
    async def pagerduty_webhook(tenant: str) -> Response:
        tenant_id = tenant
        found = tenants.get(tenant_id)
        if found is None:
            return _json({"error": f"no tenant named {tenant_id!r}"}, 404)
        if found.pagerduty_webhook_secret is None:
            return _json(
                {
                    "error": f"no PagerDuty webhook secret is configured for tenant {tenant_id!r}:"
                    f" set {found.pagerduty_webhook_secret_env} to the v3 webhook "
                    "subscription's secret and restart EyeTok"
                },
                401,
            )
        body = await raw_body("a PagerDuty webhook")
        pagerduty.verify(
            body,
            request.headers.get(pagerduty.SIGNATURE_HEADER),
            (found.pagerduty_webhook_secret,),
        )
        decoded = pagerduty.decode(body, tenant_id)
        if isinstance(decoded, pagerduty.NotForUs):
            logger.info(
                "pagerduty_event_not_acted_on",
                tenant=tenant_id,
                event_type=decoded.event_type,
                event_id=decoded.event_id,
                reason=decoded.reason,
            )
            return _json({"acted": False, "reason": decoded.reason})
        if decoded.decision == "acknowledge":
            incident, counted = await desk.acknowledge_incident(
                decoded.incident_id, decoded.by, by_id=decoded.by_id, tenants=(tenant_id,)
            )
        else:
            incident, counted = await desk.resolve_incident(
                decoded.incident_id, decoded.by, by_id=decoded.by_id, tenants=(tenant_id,)
            )
        if incident is None:
            reason = f"tenant {tenant_id!r} has no open incident {decoded.incident_id!r}"
        elif not counted:
            reason = (
                f"{decoded.incident_id} was acknowledged already, by {incident.acknowledged_by}"
            )
        else:
            reason = f"{decoded.decision}d by {decoded.by}"
        logger.info(
            "pagerduty_decision_applied" if counted else "pagerduty_event_not_acted_on",
            tenant=tenant_id,
            decision=decoded.decision,
            incident_id=decoded.incident_id,
            pagerduty_incident=decoded.pagerduty_incident,
            event_id=decoded.event_id,
            by=decoded.by,
            reason=reason,
        )
        return _json(
            {
                "acted": counted,
                "incident_id": decoded.incident_id,
                "status": incident.status if incident is not None else None,
                "reason": reason,
            }
        )
