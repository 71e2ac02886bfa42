"""The quart-trio app: everything that is not the ingest hot path.

- ``/healthz`` (alive), ``/readyz`` (every actor started, accepting; components' health);
- ``POST /slack/actions`` (and ``/slack/interactions``): a button pressed on a post, a
  modal submitted (eyetok/http/slack_interactions);
- ``POST /hooks/pagerduty/<tenant>``: PagerDuty's v3 webhooks (eyetok/http/pagerduty_hooks);
- ``POST /slack/events``: Slack's Events API (request signature v0, 5-minute window,
  ``url_verification``); direct messages carry Slack ownership nonces; a human's reply in
  a thread goes to the conversation actor (eyetok/thread_verbs.py);
- ``GET /verify/email/<token>``: the email magic link;
- ``GET /oauth/pagerduty/callback``: the PagerDuty OAuth (PKCE) redirect;
- ``/api/v1/sinks…``: the operator's sink API (``Authorization: Bearer $EYETOK_ROOT_TOKEN``);
- ``/api/v1/about``, ``notifications``, ``audit``, ``explain``, ``drills/receipts``: what the
  drill harness reads and keeps (``eyetok/http/drills.py``).
- ``POST /api/v1/incidents/<id>/ack`` and ``…/resolve``: a human acknowledges or
  resolves an incident (``{"by": "name"}``), as a Slack button or thread verb does;
- ``POST /api/v1/history/export``: a window of history as Parquet (``eyetok/http/history.py``).
- ``/api/v1/suppressions…`` and ``/api/v1/budgets``: the suppression log (and the
  acknowledgement of a cluster's notice) and this hour's budgets (root token too).
- ``GET /api/v1/review?since=24h`` and ``POST /api/v1/review/anomalies/<id>/note``: the
  daily review and the on-call's verdicts (root token too).
- ``/api/v1/tenants/<tenant>/…``: the tenant API (sinks, routes, incidents, tokens), each
  call authorised by the tenants actor (a tenant token on its own tenant, or root).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import msgspec
from quart import Response, g, request
from quart_trio import QuartTrio

from eyetok import slack_events
from eyetok.clock import Clock
from eyetok.config import Tenant
from eyetok.decoding import decode_json
from eyetok.digests import DigestReceipt
from eyetok.errors import IngestError, OverloadedError, SignatureError
from eyetok.health import SinkBoard
from eyetok.http.bodies import cap_bodies, json_body, json_value, raw_body, refused_as_json
from eyetok.http.drills import DrillDesk, add_drill_routes
from eyetok.http.errors import add_json_errors
from eyetok.http.history import HistoryArchive, add_history_routes
from eyetok.http.incident_desk import IncidentDesk
from eyetok.http.oncall import OncallDesk, add_oncall_routes
from eyetok.http.pagerduty_hooks import add_pagerduty_hooks
from eyetok.http.people import GRANTED as PERSON_GRANT
from eyetok.http.people import (
    PeopleDesk,
    add_operator_gate,
    add_people_routes,
    propose_routes,
    tenant_verdict,
)
from eyetok.http.rotation import Rotations, add_rotation_routes
from eyetok.http.slack_commands import add_slack_commands
from eyetok.http.slack_gate import acknowledgement_verdict, slack_action_gate
from eyetok.http.slack_interactions import SlackApp, add_slack_interactions
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import ApiAnswer, BudgetStanding, HandshakeAnswer, Incident, SlackMessageSeen
from eyetok.review import NoteAnswer, Review, parse_since
from eyetok.thread_verbs import ThreadMessageSeen, thread_message_of
from eyetok.verification import Verification, refusal


class Verifier(Protocol):
    """The verification actor, as the HTTP surfaces reach it."""

    async def start_verification(self, sink_id: str, requested_by: str) -> HandshakeAnswer: ...

    async def slack_message(self, message: SlackMessageSeen) -> None: ...

    async def email_link(self, token: str) -> HandshakeAnswer: ...

    async def oauth_callback(
        self, state: str, code: str | None, error: str | None
    ) -> HandshakeAnswer: ...

    async def verifications(self) -> tuple[Verification, ...]: ...


class Operations(IncidentDesk, Protocol):
    """The suppression log, the budgets and the incidents, as the operator's API reaches
    them."""

    async def budgets(self) -> tuple[BudgetStanding, ...]: ...

    async def suppressions(self) -> list[dict[str, Any]]: ...

    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None:
        """The cluster's row after the acknowledgement; None: no such cluster."""
        ...

    async def acknowledge_digest(self, what: str, by: str) -> tuple[DigestReceipt | None, bool]:
        """An operator digest's read receipt (None: no such digest), and whether this
        read counted (False: read already)."""
        ...

    async def incidents(self, *, open_only: bool, tenant: str | None) -> list[Incident]: ...

    async def playbook_click(self, action: str, target: str, by: str) -> str:
        """A playbook button (actors/playbooks.py): one line saying what it did."""
        ...

    async def proposal_tenant(self, proposal_id: str) -> str | None: ...


class Conversation(Protocol):
    """The conversation actor, as ``/slack/events`` hands it a thread reply."""

    def thread_message(self, message: ThreadMessageSeen) -> None: ...


class Reviewer(Protocol):
    """The routines actor, as the operator's review API reaches it."""

    async def review(self, since: datetime) -> Review: ...

    async def note_anomaly(
        self, anomaly_id: str, verdict: str, note: str, by: str
    ) -> NoteAnswer: ...


class _NoteBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    verdict: str
    note: str
    by: str


class _StartBody(msgspec.Struct, kw_only=True):
    requested_by: str | None = None


class _AckBody(msgspec.Struct, kw_only=True):
    by: str = ""


async def _acknowledger(does: str = "acknowledges") -> str | Response:
    """Who acknowledges (or resolves), from the request's ``{"by": "name"}`` (cut to 200
    characters), or the 400 that asks for it; a signed-in person as themselves."""
    if g.get(PERSON_GRANT):  # a person acknowledges as themselves (eyetok/http/people.py)
        return str(g.get(PERSON_GRANT))
    body = await json_body(_AckBody, "an acknowledgement", optional=True)
    by = (body.by if body else "").strip()
    if not by:
        return _json({"error": f'say who {does}: a JSON body {{"by": "name"}}'}, 400)
    return by[:200]


class TenantApi(Protocol):
    """The tenants actor and the tenant-scoped history, as the tenant API reaches them."""

    async def tenant_call(
        self,
        credential: str,
        tenant: str,
        op: str,
        key: str = "",
        body: object = None,
        *,
        vouched: str = "",
    ) -> ApiAnswer: ...

    async def tenant_incidents(
        self, tenant: str, *, status: str | None, limit: int
    ) -> list[Incident]: ...

    async def tenant_incident(self, tenant: str, incident_id: str) -> Incident | None: ...


class _SlackEvent(msgspec.Struct, kw_only=True):
    type: str = ""
    subtype: str | None = None
    bot_id: str | None = None
    channel: str = ""
    channel_type: str = ""
    user: str = ""
    text: str = ""


class _SlackEnvelope(msgspec.Struct, kw_only=True):
    type: str
    challenge: str | None = None
    team_id: str = ""
    event: _SlackEvent | None = None


def sink_rows(
    verifications: tuple[Verification, ...], board: SinkBoard | None, now: datetime
) -> list[dict[str, Any]]:
    """Every configured sink, verified or not, with its standing and the deliveries held
    for its verification."""
    standing = {v.sink_id: v for v in verifications}
    configured = board.configured() if board is not None else {}
    rows = []
    for sink_id in sorted(set(standing) | set(configured)):
        v = standing.get(sink_id)
        reason = refusal(v, now)
        row: dict[str, Any] = (
            msgspec.to_builtins(v)
            if v is not None
            else {"sink_id": sink_id, "sink_type": configured[sink_id], "status": "unverified"}
        )
        held = board.held(sink_id) if board is not None else None
        row |= {
            "deliverable": reason is None,
            "why": reason,
            "held_unverified": held.count if held else 0,
            "held_since": held.oldest.isoformat() if held else None,
        }
        rows.append(row)
    return rows


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def _answered(answer: HandshakeAnswer | NoteAnswer, status: int) -> Response:
    """An answer with ``ok``/``message``; a refusal carries ``error`` as every one does."""
    body = msgspec.to_builtins(answer)
    if not answer.ok:
        body["error"] = answer.message
    return _json(body, status)


def _page(answer: HandshakeAnswer) -> Response:
    status = 200 if answer.ok else 400
    return Response(f"EyeTok: {answer.message}\n", status=status, content_type="text/plain")


def create_app(
    *,
    readiness: Callable[[], dict[str, Any]],
    verifier: Verifier | None = None,
    reviewer: Reviewer | None = None,
    root_token: str | None = None,
    slack_signing_secret: str | None = None,
    clock: Clock | None = None,
    drills: DrillDesk | None = None,
    operations: Operations | None = None,
    tenant_api: TenantApi | None = None,
    sink_board: SinkBoard | None = None,
    tenants: Mapping[str, Tenant] | None = None,
    slack_app: SlackApp | None = None,
    rotations: Rotations | None = None,
    oncall: OncallDesk | None = None,
    conversation: Conversation | None = None,
    people: PeopleDesk | None = None,
    slack_api_url: str | None = None,
    archive: HistoryArchive | None = None,
    credentials: LiveCredentials | None = None,
) -> QuartTrio:
    """``readiness()`` answers ``{"ready": bool, ...details}``. ``credentials``: the root
    token and Slack signing secret, read at each request (SIGHUP swaps them); without it,
    ``root_token`` and ``slack_signing_secret`` stay for the app's life."""
    live = credentials or LiveCredentials(root_token, slack_signing_secret)
    app = QuartTrio("eyetok")
    cap_bodies(app)
    add_json_errors(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        state = readiness()
        return _json(state, 200 if state.get("ready") else 503)

    if verifier is None or clock is None:
        return app

    def operator_only() -> Response | None:
        if g.get(PERSON_GRANT):  # a person authorised for this path (eyetok/http/people.py)
            return None
        root = live.root_token
        if root is None:
            return _json(
                {"error": "no EYETOK_ROOT_TOKEN is configured: set it and restart EyeTok"}, 503
            )
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), root.encode()):
            return _json({"error": "a root token is required"}, 401)
        return None

    @app.post("/slack/events")
    async def slack_event() -> Response:
        signing_secret = live.slack_signing_secret
        if signing_secret is None:
            return _json(
                {
                    "error": "no SLACK_SIGNING_SECRET is configured: set it to the Slack app's "
                    "Signing Secret (Basic Information) and restart EyeTok"
                },
                503,
            )
        body = await raw_body("a Slack event")
        try:
            slack_events.verify(
                body,
                timestamp=request.headers.get("x-slack-request-timestamp"),
                signature=request.headers.get("x-slack-signature"),
                signing_secret=signing_secret,
                now=int(clock.now().timestamp()),
            )
        except SignatureError as exc:
            return _json({"error": str(exc)}, 401)
        envelope = decode_json(body, _SlackEnvelope, "a Slack event")
        if envelope.type == "url_verification":
            return _json({"challenge": envelope.challenge or ""})
        said = thread_message_of(body, clock.now()) if conversation is not None else None
        if said is not None and conversation is not None:
            try:
                conversation.thread_message(said)
            except OverloadedError as exc:
                return refused_as_json(exc, field="(body)")
            return _json({"ok": True})
        event = envelope.event
        if (
            envelope.type == "event_callback"
            and event is not None
            and event.type == "message"
            and event.subtype is None
            and event.bot_id is None
        ):
            await verifier.slack_message(
                SlackMessageSeen(
                    team_id=envelope.team_id,
                    channel=event.channel,
                    channel_type=event.channel_type,
                    user=event.user,
                    text=event.text,
                )
            )
        return _json({"ok": True})

    @app.get("/verify/email/<token>")
    async def email_link(token: str) -> Response:
        return _page(await verifier.email_link(token))

    @app.get("/oauth/pagerduty/callback")
    async def oauth_callback() -> Response:
        args = request.args
        return _page(
            await verifier.oauth_callback(
                args.get("state", ""), args.get("code"), args.get("error")
            )
        )

    @app.post("/api/v1/sinks/<sink_id>/verification")
    async def start_verification(sink_id: str) -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body = await json_body(_StartBody, "a verification request", optional=True)
        requested_by = (body.requested_by if body else None) or "operator"
        answer = await verifier.start_verification(sink_id, requested_by)
        status = 200 if answer.ok else (404 if "no sink named" in answer.message else 400)
        return _answered(answer, status)

    @app.get("/api/v1/sinks")
    async def sinks() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        return _json({"sinks": sink_rows(await verifier.verifications(), sink_board, clock.now())})

    if drills is not None:
        add_drill_routes(app, drills, operator_only)
    if tenants is not None and operations is not None:
        add_pagerduty_hooks(app, tenants, operations)
    if rotations is not None:
        add_rotation_routes(app, rotations, operator_only)
    if oncall is not None:
        add_oncall_routes(app, oncall, operator_only)
    if archive is not None:
        add_history_routes(app, archive, operator_only, clock)
    if operations is not None:
        add_slack_interactions(
            app,
            operations,
            slack_app,
            lambda: live.slack_signing_secret,
            clock,
            may_press=slack_action_gate(people, operations, slack_api_url) if people else None,
        )

        @app.get("/api/v1/budgets")
        async def budgets() -> Response:
            refused = operator_only()
            if refused is not None:
                return refused
            return _json({"budgets": msgspec.to_builtins(await operations.budgets())})

        @app.get("/api/v1/suppressions")
        async def suppressions() -> Response:
            refused = operator_only()
            if refused is not None:
                return refused
            return _json({"suppressions": await operations.suppressions()})

        @app.post("/api/v1/suppressions/<cluster_id>/ack")
        async def acknowledge(cluster_id: str) -> Response:
            refused = operator_only()
            if refused is not None:
                return refused
            by = await _acknowledger()
            if isinstance(by, Response):
                return by
            row = await operations.acknowledge_cluster(cluster_id, by)
            if row is None:
                return _json({"error": f"no cluster named {cluster_id!r}"}, 404)
            return _json({"suppression": row})

        @app.get("/api/v1/incidents")
        async def operator_incidents() -> Response:
            refused = operator_only()
            if refused is not None:
                return refused
            open_only = request.args.get("open", "") in ("1", "true", "yes")
            tenant = request.args.get("tenant") or None
            found = await operations.incidents(open_only=open_only, tenant=tenant)
            return _json({"incidents": msgspec.to_builtins(found)})

        @app.post("/api/v1/incidents/<incident_id>/ack")
        async def acknowledge_incident(incident_id: str) -> Response:
            verdict = (
                await acknowledgement_verdict(people, operations, incident_id) if people else None
            )
            if verdict is not None and verdict.status == 403:
                return _json(verdict.body, 403)
            # a person acknowledges as themselves; the root token (open mode) names someone
            person = str(verdict.body["by"]) if verdict and verdict.status == 200 else ""
            person = person if person.startswith("person:") else ""
            refused = None if person else operator_only()
            if refused is not None:
                return refused
            by = person or await _acknowledger()
            if isinstance(by, Response):
                return by
            incident, counted = await operations.acknowledge_incident(incident_id, by)
            if incident is None:
                return _json({"error": f"no open incident {incident_id!r}"}, 404)
            return _json({"incident": msgspec.to_builtins(incident), "acknowledged_now": counted})

        @app.post("/api/v1/incidents/<incident_id>/resolve")
        async def resolve_incident(incident_id: str) -> Response:
            by = operator_only() or await _acknowledger("resolves")
            if isinstance(by, Response):
                return by
            incident, _ = await operations.resolve_incident(incident_id, by)
            if incident is None:
                return _json({"error": f"no open incident {incident_id!r}"}, 404)
            return _json({"incident": msgspec.to_builtins(incident)})

    if reviewer is None:
        return app

    @app.get("/api/v1/review")
    async def review() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        try:
            window = parse_since(request.args.get("since", "24h"))
        except ValueError as exc:
            return _json({"error": f"since: {exc}"}, 400)
        found = await reviewer.review(clock.now() - window)
        return _json(msgspec.to_builtins(found))

    @app.post("/api/v1/review/anomalies/<anomaly_id>/note")
    async def note_anomaly(anomaly_id: str) -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body = await json_body(_NoteBody, "a note is {verdict, note, by}")
        if body.verdict not in ("benign", "escalate"):
            return _json({"error": "verdict is benign or escalate"}, 400)
        if not body.note.strip() or not body.by.strip():
            return _json({"error": "a verdict needs a note and who gives it"}, 400)
        answer = await reviewer.note_anomaly(anomaly_id, body.verdict, body.note, body.by)
        status = 200 if answer.ok else 404
        return _answered(answer, status)

    if people is not None:
        add_people_routes(app, people)
        add_slack_commands(app, people, lambda: live.slack_signing_secret, clock)
        add_operator_gate(app, people)
    if tenant_api is not None:
        _tenant_routes(app, tenant_api, verifier, clock, people)
    return app


def _credential() -> str:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def _answer(answer: ApiAnswer) -> Response:
    return _json(answer.body, answer.status)


def _tenant_routes(
    app: QuartTrio, api: TenantApi, verifier: Verifier, clock: Clock, people: PeopleDesk | None
) -> None:
    """``/api/v1/tenants/<tenant>/…``: every call is authorised by the tenants actor
    before anything is read or written (a token of another tenant: 403, audited), and a
    body is read only after that (capped, see ``eyetok/http/bodies.py``)."""

    async def call(tenant: str, op: str, key: str = "", *, with_body: bool = False) -> Response:
        verdict = await tenant_verdict(people, op, tenant)  # who may do what (access.py)
        if isinstance(verdict, Response):
            return verdict
        vouched = verdict.vouched
        body: object = None
        admitted_as = vouched
        if with_body:
            allowed = await api.tenant_call(_credential(), tenant, "admit", op, vouched=vouched)
            if allowed.status != 200:
                return _answer(allowed)
            admitted_as = str(allowed.body.get("as", ""))
            try:
                body = await json_value(f"the {op.replace('_', ' ')} body")
            except IngestError as exc:
                return refused_as_json(exc, field="(body)")
        if verdict.review and people is not None:

            async def checked(check_op: str, proposed: object) -> ApiAnswer:
                return await api.tenant_call(
                    _credential(), tenant, check_op, body=proposed, vouched=vouched
                )

            return await propose_routes(people, checked, tenant, body, admitted_as)
        return _answer(await api.tenant_call(_credential(), tenant, op, key, body, vouched=vouched))

    async def authorised(tenant: str, reading: str) -> Response | None:
        verdict = await tenant_verdict(people, "authorise", tenant)
        if isinstance(verdict, Response):
            return verdict
        allowed = await api.tenant_call(
            _credential(), tenant, "authorise", reading, vouched=verdict.vouched
        )
        return None if allowed.status == 200 else _answer(allowed)

    @app.get("/api/v1/tenants/<tenant>/sinks")
    async def tenant_sinks(tenant: str) -> Response:
        verdict = await tenant_verdict(people, "list_sinks", tenant)
        if isinstance(verdict, Response):
            return verdict
        answer = await api.tenant_call(_credential(), tenant, "list_sinks", vouched=verdict.vouched)
        if answer.status != 200:
            return _answer(answer)
        standing = {v.sink_id: v for v in await verifier.verifications()}
        now = clock.now()
        sinks = []
        for sink in answer.body.get("sinks", []):  # type: ignore[attr-defined]
            v = standing.get(sink["sink_id"])
            reason = refusal(v, now)
            sinks.append(
                {
                    **sink,
                    "verification": v.status.value if v else None,
                    "deliverable": reason is None,
                    "why": reason,
                }
            )
        return _json({"tenant": tenant, "sinks": sinks})

    @app.put("/api/v1/tenants/<tenant>/sinks/<sink_id>")
    async def put_tenant_sink(tenant: str, sink_id: str) -> Response:
        return await call(tenant, "put_sink", sink_id, with_body=True)

    @app.delete("/api/v1/tenants/<tenant>/sinks/<sink_id>")
    async def delete_tenant_sink(tenant: str, sink_id: str) -> Response:
        return await call(tenant, "delete_sink", sink_id)

    @app.post("/api/v1/tenants/<tenant>/sinks/<sink_id>/verification")
    async def verify_tenant_sink(tenant: str, sink_id: str) -> Response:
        verdict = await tenant_verdict(people, "own_sink", tenant)
        if isinstance(verdict, Response):
            return verdict
        owned = await api.tenant_call(
            _credential(), tenant, "own_sink", sink_id, vouched=verdict.vouched
        )
        if owned.status != 200:
            return _answer(owned)
        answer = await verifier.start_verification(sink_id, f"tenant:{tenant}")
        return _answered(answer, 200 if answer.ok else 400)

    @app.get("/api/v1/tenants/<tenant>/routes")
    async def tenant_routes(tenant: str) -> Response:
        return await call(tenant, "get_routes")

    @app.put("/api/v1/tenants/<tenant>/routes")
    async def put_tenant_routes(tenant: str) -> Response:
        return await call(tenant, "put_routes", with_body=True)

    @app.get("/api/v1/tenants/<tenant>/incidents")
    async def tenant_incidents(tenant: str) -> Response:
        refused = await authorised(tenant, "incidents")
        if refused is not None:
            return refused
        status = request.args.get("status") or None
        if status not in (None, "open", "acknowledged", "resolved"):
            return _json(
                {"error": "status is open, acknowledged or resolved", "field": "status"}, 400
            )
        try:
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            return _json({"error": "limit is a number", "field": "limit"}, 400)
        found = await api.tenant_incidents(tenant, status=status, limit=limit)
        return _json({"tenant": tenant, "incidents": msgspec.to_builtins(found)})

    @app.get("/api/v1/tenants/<tenant>/incidents/<incident_id>")
    async def tenant_incident(tenant: str, incident_id: str) -> Response:
        refused = await authorised(tenant, f"incident {incident_id}")
        if refused is not None:
            return refused
        found = await api.tenant_incident(tenant, incident_id)
        if found is None:
            return _json({"error": f"tenant {tenant!r} has no incident {incident_id!r}"}, 404)
        return _json(msgspec.to_builtins(found))

    @app.post("/api/v1/tenants/<tenant>/tokens")
    async def issue_tenant_token(tenant: str) -> Response:
        return await call(tenant, "issue_token", with_body=True)

    @app.get("/api/v1/tenants/<tenant>/tokens")
    async def tenant_tokens(tenant: str) -> Response:
        return await call(tenant, "list_tokens")

    @app.delete("/api/v1/tenants/<tenant>/tokens/<token_id>")
    async def revoke_tenant_token(tenant: str, token_id: str) -> Response:
        return await call(tenant, "revoke_token", token_id)
