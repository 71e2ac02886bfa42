"""``POST /slack/interactions``: Slack's interactivity requests (the app manifest's
Interactivity Request URL).

A button on an EyeTok post comes back here when a person presses it: a form body whose
``payload`` field is the JSON of a ``block_actions`` request, signed like the Events API
(signature v0, 5-minute window). The one action EyeTok puts on a post is
``eyetok_acknowledge``, with the value ``cluster:<id>`` (a fired suppression cluster's
notice) or ``incident:<id>`` (a SEV1 post, or its re-notification): it records the
acknowledgement as the operator API's ``/ack`` routes do, by the Slack user who pressed it
(``slack:<name> (<user id>)``). An incident's acknowledgement stops its escalation, is
audited, rewrites the first post to say who acknowledged it and tells PagerDuty where a
PagerDuty sink is on the route (:mod:`actors.incidents`, :mod:`actors.router`). Anything
else is answered 200 and logged, so Slack shows no error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from eyetok import log, slack_events
from eyetok.clock import Clock
from eyetok.errors import SignatureError
from eyetok.messages import Incident

ACKNOWLEDGE_ACTION = "eyetok_acknowledge"  # the render's button (actors/sinks/slack/render.py)


class Acknowledger(Protocol):
    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None: ...

    async def acknowledge_incident(
        self, incident_id: str, by: str
    ) -> tuple[Incident | None, bool]: ...


class _User(msgspec.Struct, kw_only=True):
    id: str = ""
    username: str | None = None
    name: str | None = None


class _Action(msgspec.Struct, kw_only=True):
    action_id: str = ""
    value: str | None = None


class _Interaction(msgspec.Struct, kw_only=True):
    type: str
    user: _User = msgspec.field(default_factory=_User)
    actions: list[_Action] = msgspec.field(default_factory=list)
    response_url: str = ""


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def add_slack_interactions(
    app: QuartTrio,
    operations: Acknowledger,
    signing_secret: str | None,
    clock: Clock,
    *,
    may_acknowledge: Callable[[str, str, str], Awaitable[str | None]] | None = None,
) -> None:
    """``may_acknowledge(slack user id, button value, response_url)``: None, or the refusal
    that names the role needed (eyetok/access.py), told to the person ephemerally through
    the response_url; nothing is recorded."""
    logger = log.get("http")

    @app.post("/slack/interactions")
    async def slack_interaction() -> Response:
        if signing_secret is None:
            return _json(
                {
                    "error": "no SLACK_SIGNING_SECRET is configured: set it to the Slack app's "
                    "Signing Secret (Basic Information) and restart EyeTok"
                },
                503,
            )
        raw = await request.get_data(as_text=False)
        body = raw if isinstance(raw, bytes) else raw.encode()
        try:
            slack_events.verify(
                body,
                timestamp=request.headers.get("x-slack-request-timestamp"),
                signature=request.headers.get("x-slack-signature"),
                signing_secret=signing_secret,
                now=int(clock.now().timestamp()),
            )
            payload = parse_qs(body.decode("utf-8", "replace")).get("payload", [""])[0]
            interaction = msgspec.json.decode(payload, type=_Interaction)
        except SignatureError as exc:
            return _json({"error": str(exc)}, 401)
        except msgspec.DecodeError as exc:
            return _json({"error": f"not a Slack interaction payload: {exc}"}, 400)
        who = interaction.user.username or interaction.user.name or interaction.user.id
        for action in interaction.actions:
            value = action.value or ""
            refused = (
                await may_acknowledge(interaction.user.id, value, interaction.response_url)
                if may_acknowledge and action.action_id == ACKNOWLEDGE_ACTION
                else None
            )
            if refused is not None:
                logger.info("slack_acknowledge_refused", value=value, by=who, why=refused)
                return _json(
                    {"response_type": "ephemeral", "replace_original": False, "text": refused}
                )
            if action.action_id == ACKNOWLEDGE_ACTION and value.startswith("incident:"):
                incident_id = value.removeprefix("incident:")
                by = f"slack:{who}" + (
                    f" ({interaction.user.id})"
                    if interaction.user.id and interaction.user.id != who
                    else ""
                )
                incident, counted = await operations.acknowledge_incident(incident_id, by[:200])
                logger.info(
                    "slack_incident_acknowledged"
                    if counted
                    else "slack_incident_acknowledged_already"
                    if incident is not None
                    else "slack_acknowledge_unknown",
                    incident_id=incident_id,
                    by=by,
                )
                continue
            if action.action_id != ACKNOWLEDGE_ACTION or not value.startswith("cluster:"):
                logger.info("slack_action_ignored", action_id=action.action_id, by=who)
                continue
            cluster_id = value.removeprefix("cluster:")
            row = await operations.acknowledge_cluster(cluster_id, f"slack:{who}")
            logger.info(
                "slack_acknowledged" if row is not None else "slack_acknowledge_unknown",
                cluster_id=cluster_id,
                by=who,
            )
        return _json({"ok": True})
