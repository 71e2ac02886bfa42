"""Who may do what, over HTTP (the people actor answers every call; eyetok/access.py decides).

- ``GET /api/v1/people`` and ``GET /api/v1/people/me``: the bindings and worn hats; who am I;
- ``PUT|DELETE /api/v1/people/<slack user id>/roles/<role>[?tenant=T]``: bind or unbind a
  role (``root_operator``, or the root token), audited;
- ``POST /api/v1/people/<slack user id>/tokens``: the person's API token (shown once);
- ``POST /api/v1/role/switch`` ``{"role", "tenant"?, "for": "8h", "why"}`` and
  ``POST /api/v1/role/end``: put on and take off a hat (a person's token);
- ``GET /api/v1/changes[?status=pending]``, ``POST /api/v1/changes/<id>/approve|reject``
  ``{"why"}``: the two-person rule review; an approved change is applied at once;
- (``POST /slack/commands``, the ``/eyetok`` slash command: eyetok/http/slack_commands.py)

A person calls the API with ``Authorization: Bearer <their token>`` (``EYETOK_TOKEN`` for the
CLI); Slack requests carry the Slack user id Slack signed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from quart import Response, g, request
from quart_trio import QuartTrio

from eyetok.access import Action, Caller
from eyetok.changes import unified_diff
from eyetok.errors import IngestError
from eyetok.http.bodies import json_value, refused_as_json
from eyetok.messages import ApiAnswer, PeopleOp, PeopleRequest, Reply

REVIEWER = Caller(kind="root_token", id="eyetok")  # EyeTok itself, recording an outcome


class PeopleDesk(Protocol):
    async def people_call(
        self, request_of: Callable[[Reply[ApiAnswer]], PeopleRequest]
    ) -> ApiAnswer: ...

    async def apply_change(self, change: dict[str, Any]) -> ApiAnswer:
        """Apply an approved change (its ``proposed_json``) as the reviewers' act."""
        ...


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def bearer() -> str:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


async def ask(
    desk: PeopleDesk,
    op: PeopleOp,
    *,
    credential: str | None = None,
    slack_user: str = "",
    caller: Caller | None = None,
    action: Action | None = None,
    tenant: str | None = None,
    key: str = "",
    body: object = None,
) -> ApiAnswer:
    """One call on the people actor; the credential is the request's bearer by default."""
    cred = bearer() if credential is None and not slack_user and caller is None else credential
    return await desk.people_call(
        lambda reply: PeopleRequest(
            op=op,
            reply=reply,
            credential=cred or "",
            slack_user=slack_user,
            caller=caller,
            action=str(action) if action else "",
            tenant=tenant,
            key=key,
            body=body,
        )
    )


async def authorised(
    desk: PeopleDesk, action: Action, tenant: str | None, *, slack_user: str = ""
) -> ApiAnswer:
    """The grant (200, ``by`` the actor's name) or the refusal (401/403, ``needed_role``)."""
    return await ask(desk, "authorise", slack_user=slack_user, action=action, tenant=tenant)


async def decide_and_apply(
    desk: PeopleDesk, op: PeopleOp, change_id: str, body: object
) -> ApiAnswer:
    """Approve or reject a change; an approved one is applied at once and its outcome
    recorded (``applied``, or ``failed`` with the reason)."""
    decided = await ask(desk, op, key=change_id, body=body)
    change = decided.body.get("change")
    if decided.status != 200 or op != "approve" or not isinstance(change, dict):
        return decided
    applied = await desk.apply_change(change)
    note = f" ({applied.body['note']})" if applied.body.get("note") else ""
    outcome = (
        f"applied: HTTP {applied.status}{note}"
        if applied.status < 300
        else f"not applied: {applied.body.get('error')}"
    )
    return await ask(
        desk,
        "applied",
        caller=REVIEWER,
        key=change_id,
        body={"ok": applied.status < 300, "outcome": outcome},
    )


def add_people_routes(app: QuartTrio, desk: PeopleDesk) -> None:
    def answered(answer: ApiAnswer) -> Response:
        return _json(answer.body, answer.status)

    async def body_or_refusal(what: str) -> object:
        try:
            return await json_value(what)
        except IngestError as exc:
            return refused_as_json(exc, field="(body)")

    @app.get("/api/v1/people")
    async def people() -> Response:
        return answered(await ask(desk, "people"))

    @app.get("/api/v1/people/me")
    async def whoami() -> Response:
        return answered(await ask(desk, "whoami"))

    @app.put("/api/v1/people/<person>/roles/<role>")
    async def bind(person: str, role: str) -> Response:
        body = {"role": role, "tenant": request.args.get("tenant") or None}
        return answered(await ask(desk, "bind", key=person, body=body))

    @app.delete("/api/v1/people/<person>/roles/<role>")
    async def unbind(person: str, role: str) -> Response:
        body = {"role": role, "tenant": request.args.get("tenant") or None}
        return answered(await ask(desk, "unbind", key=person, body=body))

    @app.post("/api/v1/people/<person>/tokens")
    async def issue_token(person: str) -> Response:
        return answered(await ask(desk, "issue_token", key=person))

    @app.post("/api/v1/role/switch")
    async def switch() -> Response:
        body = await body_or_refusal("a hat switch")
        if isinstance(body, Response):
            return body
        return answered(await ask(desk, "switch", body=body))

    @app.post("/api/v1/role/end")
    async def end() -> Response:
        return answered(await ask(desk, "end"))

    @app.get("/api/v1/changes")
    async def changes() -> Response:
        return answered(await ask(desk, "changes", key=request.args.get("status", "")))

    @app.post("/api/v1/changes/<change_id>/<verdict>")
    async def review_change(change_id: str, verdict: str) -> Response:
        if verdict not in ("approve", "reject"):
            return _json({"error": f"no such path: POST {request.path}"}, 404)
        body = await body_or_refusal("a review")
        if isinstance(body, Response):
            return body
        op: PeopleOp = "approve" if verdict == "approve" else "reject"
        return answered(await decide_and_apply(desk, op, change_id, body))


# --- the gates the other routes call -------------------------------------------------------

# the tenant API's operations and the action each one is
TENANT_ACTIONS: dict[str, Action] = {
    "authorise": Action.VIEW,
    "list_sinks": Action.VIEW,
    "get_routes": Action.VIEW,
    "own_sink": Action.CONFIGURE_TENANT,
    "put_sink": Action.CONFIGURE_TENANT,
    "delete_sink": Action.CONFIGURE_TENANT,
    "put_routes": Action.CONFIGURE_TENANT,
}


class TenantVerdict(NamedTuple):
    """What the people actor said of a tenant API call: ``vouched`` (a person's name, for
    the tenants actor to act as; "" to let it check a tenant or root token as before), and
    whether the call is a rule change that waits for review."""

    vouched: str = ""
    review: bool = False


async def tenant_verdict(desk: PeopleDesk | None, op: str, tenant: str) -> TenantVerdict | Response:
    action = TENANT_ACTIONS.get(op)
    if desk is None or action is None:
        return TenantVerdict()
    answer = await authorised(desk, action, tenant)
    if answer.status == 403:
        return _json(answer.body, 403)
    grant = answer.body.get("grant")
    person = isinstance(grant, dict) and grant["caller"]["kind"] == "person"
    return TenantVerdict(
        vouched=str(answer.body["by"]) if person else "",
        review=not answer.body.get("open_mode") and op == "put_routes",
    )


async def propose_routes(
    desk: PeopleDesk,
    tenant_call: Callable[[str, object], Awaitable[ApiAnswer]],
    tenant: str,
    body: object,
    admitted_as: str,
) -> Response:
    """``PUT /api/v1/tenants/<t>/routes`` under review: checked, diffed against the live
    routes and proposed (202); it goes live when another person approves it."""
    if not isinstance(body, dict) or not isinstance(body.get("why"), str):
        return _json(
            {
                "error": 'a routes change waits for review: say why, {"routes": {...}, '
                '"why": "what changes and why"}',
                "field": "why",
            },
            400,
        )
    proposed = {k: v for k, v in body.items() if k != "why"}
    checked = await tenant_call("check_routes", proposed)
    if checked.status != 200:
        return _json(checked.body, checked.status)
    live = await tenant_call("get_routes", None)
    diff = unified_diff(
        live.body.get("routes"), checked.body["routes"], name=f"tenants/{tenant}/routes"
    )
    caller = (
        Caller(kind="tenant_token", id=admitted_as.removeprefix("token:"), tenant=tenant)
        if admitted_as.startswith("token:")
        else None
    )
    answer = await ask(
        desk,
        "propose",
        caller=caller,
        tenant=tenant,
        body={"why": body["why"], "diff": diff, "proposed": proposed, "kind": "tenant_routes"},
    )
    return _json(answer.body, answer.status)


# paths that authorise their callers themselves (the tenant API, this module's routes, the
# incident acknowledgement); every other /api/v1 path is the operator's
_SELF_AUTHORISED = re.compile(
    r"^/api/v1/(tenants/|people(/|$)|role/|changes(/|$)|incidents/[^/]+/ack$)"
)
_CLUSTER_ACK = re.compile(r"^/api/v1/suppressions/[^/]+/ack$")
GRANTED = "eyetok_person_grant"  # on quart's ``g``: a person's grant for an operator path


def add_operator_gate(app: QuartTrio, desk: PeopleDesk) -> None:
    """A person's token on an operator path (``/api/v1/sinks``, ``budgets``, ``review``…):
    reading needs any role (viewer and up), anything else ``root_operator`` (worn). The
    grant goes on ``g`` for the route's root-token check to honour; a refusal is answered
    here (403, naming the role); the root token and unknown tokens pass on unchanged."""

    @app.before_request
    async def operator_path() -> Response | None:
        if not request.path.startswith("/api/v1/") or _SELF_AUTHORISED.match(request.path):
            return None
        if not bearer():
            return None
        reading = request.method in ("GET", "HEAD")
        # a read of one tenant's rows (?tenant=acme) needs a role on that tenant only
        tenant = (request.args.get("tenant") or None) if reading else None
        action = Action.VIEW if reading else Action.OPERATE
        if _CLUSTER_ACK.match(request.path):  # as the notice's button: a responder to all
            action = Action.ACKNOWLEDGE
        answer = await authorised(desk, action, tenant)
        if answer.status == 403:
            return _json(answer.body, 403)
        grant = answer.body.get("grant")
        if answer.status == 200 and isinstance(grant, dict) and grant["via"] in ("binding", "hat"):
            setattr(g, GRANTED, str(answer.body["by"]))
        return None
