"""Who may press which EyeTok button in Slack: every button and modal of
``/slack/actions`` (eyetok/http/slack_interactions.py) asks :func:`slack_action_gate`,
which asks the people actor's one authorisation (eyetok/access.py ``authorise``):

- Acknowledge (``incident:<id>``), Resolve with a note (the button and the modal's
  submission), and acknowledging a playbook's escalation: ``acknowledge`` on the
  incident's tenant, so a ``responder`` of that tenant (or to all tenants), or a
  ``tenant_scoped_operator`` hat for it; a worn ``root_operator`` hat is refused;
- Acknowledge on a cluster's or a digest's notice: ``acknowledge`` on every tenant (a
  ``responder`` bound without a tenant);
- a playbook's Approve, Reject and Propose again (``proposal:<id>``): ``remediate`` on the
  proposal's incident's tenant, the same roles as acknowledging it: running a remediation
  is the on-call's call on that tenant, and the root hat is refused it.

In open mode (no person bound) everything is allowed, as before roles. A refusal records
nothing; it names the role needed and is told to the person ephemerally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from eyetok import log
from eyetok.access import Action
from eyetok.http.people import PeopleDesk, authorised
from eyetok.http.slack_interactions import ACKNOWLEDGE_ACTION, RESOLVE_ACTION, RESOLVE_VIEW
from eyetok.messages import ApiAnswer, Incident
from eyetok.playbooks.posts import ACKNOWLEDGE_ESCALATION_ACTION, PLAYBOOK_ACTIONS
from eyetok.tls import httpx_context

SLACK_RESPONSE_ORIGINS = ("https://hooks.slack.com",)

# the button or modal -> what pressing it is, as access.py knows actions
GATED: dict[str, Action] = {
    ACKNOWLEDGE_ACTION: Action.ACKNOWLEDGE,
    RESOLVE_ACTION: Action.ACKNOWLEDGE,
    RESOLVE_VIEW: Action.ACKNOWLEDGE,  # the modal's submission; its value: private_metadata
    ACKNOWLEDGE_ESCALATION_ACTION: Action.ACKNOWLEDGE,
    **{
        action_id: Action.REMEDIATE
        for action_id in PLAYBOOK_ACTIONS
        if action_id != ACKNOWLEDGE_ESCALATION_ACTION
    },
}

SlackGate = Callable[[str, str, str, str], Awaitable[str | None]]


class IncidentTenants(Protocol):
    async def incidents(self, *, open_only: bool, tenant: str | None) -> list[Incident]: ...

    async def proposal_tenant(self, proposal_id: str) -> str | None:
        """The tenant of the incident a playbook proposal is about (None: no such one)."""
        ...


async def incident_tenant(incidents: IncidentTenants, incident_id: str) -> str | None:
    found = await incidents.incidents(open_only=True, tenant=None)
    return next((i.tenant for i in found if i.incident_id == incident_id), None)


async def acknowledgement_verdict(
    desk: PeopleDesk, incidents: IncidentTenants, incident_id: str, *, slack_user: str = ""
) -> ApiAnswer:
    """May the caller acknowledge this incident (a tenant-scoped action on its tenant)?"""
    tenant = await incident_tenant(incidents, incident_id)
    return await authorised(desk, Action.ACKNOWLEDGE, tenant, slack_user=slack_user)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def slack_action_gate(
    desk: PeopleDesk, incidents: IncidentTenants, slack_api_url: str | None = None
) -> SlackGate:
    """``gate(slack user, action_id, value, response_url)``: None when the Slack user may
    press it, else the refusal (naming the role needed), which is also posted to the
    interaction's ``response_url`` as an ephemeral message (Slack shows a button's HTTP
    answer to no one). Only Slack's origins (and that of ``slack_api_url``) are posted to.
    A button EyeTok does not gate (none today) passes."""
    origins = (*SLACK_RESPONSE_ORIGINS, *([_origin(slack_api_url)] if slack_api_url else []))
    logger = log.get("http")

    async def tenant_of(value: str) -> str | None:
        kind, _, target = value.partition(":")
        if kind == "incident":
            return await incident_tenant(incidents, target)
        if kind == "proposal":
            return await incidents.proposal_tenant(target)
        return None  # a cluster or a digest spans tenants: a responder to all

    async def refusal(slack_user: str, action_id: str, value: str, response_url: str) -> str | None:
        action = GATED.get(action_id)
        if action is None:
            return None
        verdict = await authorised(desk, action, await tenant_of(value), slack_user=slack_user)
        if verdict.status == 200:
            return None
        text = str(verdict.body.get("error"))
        if response_url and _origin(response_url) in origins:
            message = {"response_type": "ephemeral", "replace_original": False, "text": text}
            try:
                # the process's one TLS context (eyetok/tls.py), not one per refusal
                async with httpx.AsyncClient(timeout=5.0, verify=httpx_context()) as client:
                    answer = await client.post(response_url, json=message)
                logger.info("slack_refusal_told", user=slack_user, status=answer.status_code)
            except httpx.HTTPError as exc:
                logger.warning("slack_refusal_not_told", user=slack_user, reason=str(exc))
        return text

    return refusal
