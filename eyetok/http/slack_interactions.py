"""``POST /slack/actions`` (also ``/slack/interactions``): Slack's interactivity requests,
the app manifest's Interactivity Request URL.

A button pressed on an EyeTok post, or a modal submitted, comes back here: a form body
whose ``payload`` field is the JSON of a ``block_actions`` or ``view_submission``
request, signed like the Events API (signature v0, 5-minute window; anything else is 401
and changes nothing). What each does is a table keyed by ``action_id`` (buttons) and by
the view's ``callback_id`` (modals):

- ``eyetok_acknowledge``, value ``incident:<id>`` (a SEV1 post or its re-notification):
  the incident is acknowledged by the person who pressed it, as ``eyetok ack`` does;
  value ``cluster:<id>``: a fired suppression cluster's notice is acknowledged;
- ``eyetok_resolve_with_note``, value ``incident:<id>``: opens the "Resolve incident"
  modal (``views.open`` with the request's ``trigger_id``); submitting it
  (``eyetok_resolve``) resolves the incident with the note typed in it. A submission
  that cannot be applied (no note, the incident is not open, or not this workspace's)
  keeps the modal open with the reason under the note (``response_action: errors``).

A click decides only on the incidents of the tenants whose verified Slack sinks are in the
workspace it came from (and a cluster only from the operator's workspace): a payload
edited to name another tenant's incident changes nothing.

Each decision records who (``slack:<name> (<user id>)``, and ``slack:<user id>``), when
and what on the incident (in ``incident_state`` too), is audited, rewrites the first post
to say who did it, replies in the thread, and tells PagerDuty where a PagerDuty sink is
on the route (:mod:`actors.incidents`, :mod:`actors.router`). Anything else is answered
200 and logged, so Slack shows no error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from eyetok import log, slack_events
from eyetok.clock import Clock
from eyetok.digests import DIGEST, DigestReceipt
from eyetok.errors import SignatureError
from eyetok.http.incident_desk import IncidentDesk
from eyetok.playbooks.posts import PLAYBOOK_ACTIONS

ACKNOWLEDGE_ACTION = "eyetok_acknowledge"  # the render's buttons (actors/sinks/slack/render.py)
RESOLVE_ACTION = "eyetok_resolve_with_note"
RESOLVE_VIEW = "eyetok_resolve"  # the modal's callback_id
NOTE_BLOCK = NOTE_INPUT = "note"
MAX_NOTE = 500
PATHS = ("/slack/actions", "/slack/interactions")


class SlackDesk(IncidentDesk, Protocol):
    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None: ...

    async def acknowledge_digest(self, what: str, by: str) -> tuple[DigestReceipt | None, bool]: ...

    async def playbook_click(self, action: str, target: str, by: str) -> str: ...


class SlackApp(Protocol):
    """What EyeTok knows of the workspaces its Slack app is in (the verified sinks)."""

    @property
    def operator_tenant(self) -> str: ...

    async def tenants_in(self, team_id: str) -> tuple[str, ...]:
        """The tenants whose verified Slack sinks are in workspace ``team_id``: a click
        from there decides only on their incidents."""
        ...

    async def open_view(self, team_id: str, trigger_id: str, view: dict[str, Any]) -> str | None:
        """Open ``view`` in the workspace ``team_id``; None, or why it could not."""
        ...


class _User(msgspec.Struct, kw_only=True):
    id: str = ""
    username: str | None = None
    name: str | None = None
    team_id: str = ""


class _Team(msgspec.Struct, kw_only=True):
    id: str = ""


class _Action(msgspec.Struct, kw_only=True):
    action_id: str = ""
    value: str | None = None


class _Input(msgspec.Struct, kw_only=True):
    value: str | None = None


class _State(msgspec.Struct, kw_only=True):
    values: dict[str, dict[str, _Input]] = msgspec.field(default_factory=dict)


class _View(msgspec.Struct, kw_only=True):
    callback_id: str = ""
    private_metadata: str = ""
    state: _State = msgspec.field(default_factory=_State)


class _Interaction(msgspec.Struct, kw_only=True):
    type: str
    user: _User = msgspec.field(default_factory=_User)
    team: _Team | None = None
    trigger_id: str = ""
    actions: list[_Action] = msgspec.field(default_factory=list)
    view: _View | None = None
    response_url: str = ""


@dataclass(frozen=True)
class Person:
    """Who pressed or submitted, as Slack names them, and the tenants whose incidents a
    click from their workspace may decide on (None: not known, no Slack app given)."""

    user_id: str
    name: str
    team_id: str
    tenants: tuple[str, ...] | None = None

    @property
    def by(self) -> str:
        """``slack:<name> (<user id>)``, cut to 200 characters."""
        if self.user_id and self.name != self.user_id:
            return f"slack:{self.name} ({self.user_id})"[:200]
        return f"slack:{self.name}"[:200]

    @property
    def by_id(self) -> str | None:
        return f"slack:{self.user_id}" if self.user_id else None


@dataclass(frozen=True)
class Surface:
    """What the handlers reach: the desk, the Slack app's workspaces, the log."""

    desk: SlackDesk
    app: SlackApp | None
    logger: Any


Pressed = Callable[[Surface, Person, str, str], Awaitable[None]]  # person, value, trigger id
Submitted = Callable[[Surface, Person, _View], Awaitable[dict[str, str]]]  # block -> error


async def _person(interaction: _Interaction, app: SlackApp | None) -> Person:
    user = interaction.user
    team = (interaction.team.id if interaction.team is not None else "") or user.team_id
    return Person(
        user_id=user.id,
        name=user.username or user.name or user.id or "someone",
        team_id=team,
        tenants=await app.tenants_in(team) if app is not None else None,
    )


async def _acknowledge(surface: Surface, person: Person, value: str, trigger_id: str) -> None:
    if value.startswith("incident:"):
        incident_id = value.removeprefix("incident:")
        incident, counted = await surface.desk.acknowledge_incident(
            incident_id, person.by, by_id=person.by_id, tenants=person.tenants
        )
        surface.logger.info(
            "slack_incident_acknowledged"
            if counted
            else "slack_incident_acknowledged_already"
            if incident is not None
            else "slack_acknowledge_unknown",
            incident_id=incident_id,
            by=person.by,
            workspace=person.team_id,
            workspace_tenants=person.tenants,
        )
    elif value.startswith(("cluster:", DIGEST)) and not _from_operator(surface, person, value):
        return
    elif value.startswith(DIGEST):
        receipt, counted = await surface.desk.acknowledge_digest(value, person.by)
        _acknowledged(
            surface.logger, "digest", receipt is not None, counted, digest=value, by=person.by
        )
    elif value.startswith("cluster:"):
        cluster_id = value.removeprefix("cluster:")
        row = await surface.desk.acknowledge_cluster(cluster_id, person.by)
        surface.logger.info(
            "slack_acknowledged" if row is not None else "slack_acknowledge_unknown",
            cluster_id=cluster_id,
            by=person.by,
        )
    else:
        surface.logger.info("slack_action_ignored", action_id=ACKNOWLEDGE_ACTION, value=value)


def _from_operator(surface: Surface, person: Person, value: str) -> bool:
    """Whether a click on an operator digest (``cluster:<id>``, ``digest:<id>``) came from
    the operator's workspace; logged when it did not."""
    operator = surface.app.operator_tenant if surface.app is not None else None
    if person.tenants is None or operator in person.tenants:
        return True
    surface.logger.info(
        "slack_acknowledge_refused",
        digest=value,
        by=person.by,
        reason=f"workspace {person.team_id!r} is not the operator's",
    )
    return False


def resolve_view(incident_id: str) -> dict[str, Any]:
    """The "Resolve incident" modal for ``incident_id``."""
    return {
        "type": "modal",
        "callback_id": RESOLVE_VIEW,
        "private_metadata": f"incident:{incident_id}",
        "title": {"type": "plain_text", "text": "Resolve incident"},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Resolve `{incident_id}`: its escalation stops, and its thread "
                    "(and PagerDuty, where it was paged) is told who resolved it and why.",
                },
            },
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "label": {"type": "plain_text", "text": "What was done"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_INPUT,
                    "multiline": True,
                    "max_length": MAX_NOTE,
                },
            },
        ],
    }


async def _open_resolve_modal(
    surface: Surface, person: Person, value: str, trigger_id: str
) -> None:
    if not value.startswith("incident:") or surface.app is None:
        surface.logger.info("slack_action_ignored", action_id=RESOLVE_ACTION, value=value)
        return
    incident_id = value.removeprefix("incident:")
    why = await surface.app.open_view(person.team_id, trigger_id, resolve_view(incident_id))
    surface.logger.info(
        "slack_resolve_modal_opened" if why is None else "slack_resolve_modal_not_opened",
        incident_id=incident_id,
        by=person.by,
        why=why,
    )


async def _resolve_submitted(surface: Surface, person: Person, view: _View) -> dict[str, str]:
    incident_id = view.private_metadata.removeprefix("incident:")
    note = " ".join(
        (view.state.values.get(NOTE_BLOCK, {}).get(NOTE_INPUT, _Input()).value or "").split()
    )[:MAX_NOTE]
    if not note:
        return {NOTE_BLOCK: "Say what was done: the note goes into the thread and the audit."}
    incident, _ = await surface.desk.resolve_incident(
        incident_id, person.by, note=note, by_id=person.by_id, tenants=person.tenants
    )
    surface.logger.info(
        "slack_incident_resolved" if incident is not None else "slack_resolve_unknown",
        incident_id=incident_id,
        by=person.by,
        workspace=person.team_id,
        workspace_tenants=person.tenants,
    )
    if incident is None:
        return {
            NOTE_BLOCK: f"{incident_id} is not an open incident this workspace may resolve "
            "(resolved already, or another tenant's)."
        }
    return {}


def _playbook_button(verb: str) -> Pressed:
    """A playbook's button (approve, reject, propose again, acknowledge an escalation):
    the playbooks actor decides and says what it did (eyetok/playbooks/posts.py)."""

    async def pressed(surface: Surface, person: Person, value: str, trigger_id: str) -> None:
        target = value.partition(":")[2]
        said = await surface.desk.playbook_click(verb, target, person.by)
        surface.logger.info("slack_playbook_click", verb=verb, by=person.by, said=said)

    return pressed


# what a button does, by action_id; what a modal's submission does, by callback_id
BUTTONS: dict[str, Pressed] = {
    ACKNOWLEDGE_ACTION: _acknowledge,
    RESOLVE_ACTION: _open_resolve_modal,
    **{action_id: _playbook_button(verb) for action_id, verb in PLAYBOOK_ACTIONS.items()},
}
SUBMISSIONS: dict[str, Submitted] = {
    RESOLVE_VIEW: _resolve_submitted,
}


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def _acknowledged(logger: Any, what: str, known: bool, counted: bool, **about: str) -> None:
    """One log line for a press of Acknowledge on ``what`` (an incident, a digest)."""
    event = f"slack_{what}_acknowledged" + ("" if counted else "_already")
    logger.info(event if known else "slack_acknowledge_unknown", **about)


def add_slack_interactions(
    app: QuartTrio,
    desk: SlackDesk,
    slack_app: SlackApp | None,
    signing_secret_now: Callable[[], str | None],
    clock: Clock,
    *,
    may_press: Callable[[str, str, str, str], Awaitable[str | None]] | None = None,
) -> None:
    """``may_press(slack user id, action_id or callback_id, value, response_url)``: None, or
    the refusal that names the role needed (eyetok/http/slack_gate.py), told to the person
    ephemerally through the response_url (a modal: under its note); nothing is recorded."""
    surface = Surface(desk=desk, app=slack_app, logger=log.get("http"))

    async def refusal(person: Person, action_id: str, value: str, response_url: str) -> str | None:
        """None, or why ``person`` may not press ``action_id`` (logged)."""
        if may_press is None:
            return None
        refused = await may_press(person.user_id, action_id, value, response_url)
        if refused is not None:
            surface.logger.info(
                "slack_action_refused", action_id=action_id, value=value, by=person.by, why=refused
            )
        return refused

    async def slack_interaction() -> Response:
        signing_secret = signing_secret_now()  # SIGHUP may have swapped it
        if signing_secret is None:
            return _json(
                {
                    "error": "no SLACK_SIGNING_SECRET is configured: set it to the Slack app's "
                    "Signing Secret (Basic Information) and restart EyeTok"
                },
                503,
            )
        raw = await request.get_data(as_text=False)  # a form, not JSON: read as it came
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
        person = await _person(interaction, surface.app)
        if interaction.type == "view_submission" and interaction.view is not None:
            submitted = SUBMISSIONS.get(interaction.view.callback_id)
            if submitted is not None:
                view = interaction.view
                refused = await refusal(person, view.callback_id, view.private_metadata, "")
                if refused is not None:
                    return _json({"response_action": "errors", "errors": {NOTE_BLOCK: refused}})
                errors = await submitted(surface, person, view)
                if errors:
                    return _json({"response_action": "errors", "errors": errors})
                return Response("", status=200)  # an empty 200 closes the modal
        for action in interaction.actions if interaction.type == "block_actions" else ():
            refused = await refusal(
                person, action.action_id, action.value or "", interaction.response_url
            )
            if refused is not None:
                return _json(
                    {"response_type": "ephemeral", "replace_original": False, "text": refused}
                )
            pressed = BUTTONS.get(action.action_id)
            if pressed is None:
                surface.logger.info(
                    "slack_action_ignored", action_id=action.action_id, by=person.by
                )
                continue
            await pressed(surface, person, action.value or "", interaction.trigger_id)
        if interaction.type != "block_actions":  # a view EyeTok did not open, a shortcut...
            surface.logger.info(
                "slack_interaction_ignored",
                type=interaction.type,
                callback_id=interaction.view.callback_id if interaction.view else None,
                by=person.by,
            )
        return _json({"ok": True})

    for path in PATHS:
        app.add_url_rule(path, f"slack_interaction{path}", slack_interaction, methods=["POST"])
