"""Each action kind as an HTTP call, and what its answer means.

:func:`call_of` turns an action and its incident into a :class:`Call` (method, URL, JSON
body, which credential signs it: by environment variable *name*). :func:`shown` is how a
post, an audit line or a log line says it: method, URL and parameters, never a header or
a credential. :func:`perform` makes the call with httpx and classifies the answer into a
:class:`Result` in one place:

- ``ok``: the answer is the one the kind expects (2xx; for ``http.check`` the expected
  status and JSON condition);
- ``failed``: an answer, not the expected one (the status and a short reason);
- ``unreachable``: no answer (refused, timed out, a TLS or DNS failure), or no credential
  in the environment (then nothing is sent at all).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

import httpx
import msgspec

from eyetok import standard_webhooks
from eyetok.guard import scrub
from eyetok.messages import Incident
from eyetok.playbooks.config import (
    Action,
    HerokuRestartDyno,
    HerokuScale,
    HttpCheck,
    Integrations,
    JsonExpectation,
    Registry,
    SentryIgnoreIssue,
    SentryLatestEvent,
    SentryResolveIssue,
    SignedHttp,
    kind_of,
)

HEROKU_ACCEPT = "application/vnd.heroku+json; version=3"
_SAID = 160  # characters of an upstream answer quoted in a finding

Finding = Literal["ok", "failed", "unreachable"]


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request an action makes (no credential in it: ``bearer_env`` and
    ``signing_env`` name where the credential is read at the moment of the call)."""

    kind: str
    method: str
    url: str
    body: dict[str, Any] | None = None
    accept: str = "application/json"
    bearer_env: str | None = None
    signing_env: str | None = None
    expect_status: int | None = None  # http.check: exactly this status
    expect_json: JsonExpectation | None = None


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """What a call found: the finding, the HTTP status (None: no answer) and a one-line
    summary quoting only the upstream answer (scrubbed of IP literals)."""

    finding: Finding
    status: int | None
    summary: str


def _issue(issue: str | None, incident: Incident) -> str:
    return issue if issue else incident.dedup_key


def call_of(action: Action, incident: Incident, integrations: Integrations) -> Call:
    heroku = integrations.heroku.api_url.rstrip("/")
    sentry = integrations.sentry.api_url.rstrip("/")
    kind = kind_of(action)
    match action:
        case HerokuRestartDyno(app=app, dyno=dyno):
            return Call(
                kind=kind,
                method="DELETE",
                url=f"{heroku}/apps/{app}/dynos/{dyno}",
                accept=HEROKU_ACCEPT,
                bearer_env=integrations.heroku.token_env,
            )
        case HerokuScale(app=app, type=process, quantity=quantity, size=size):
            body: dict[str, Any] = {"quantity": quantity}
            if size is not None:
                body["size"] = size
            return Call(
                kind=kind,
                method="PATCH",
                url=f"{heroku}/apps/{app}/formation/{process}",
                body=body,
                accept=HEROKU_ACCEPT,
                bearer_env=integrations.heroku.token_env,
            )
        case SentryLatestEvent(issue=issue):
            return Call(
                kind=kind,
                method="GET",
                url=f"{sentry}/api/0/issues/{_issue(issue, incident)}/events/latest/",
                bearer_env=integrations.sentry.token_env,
            )
        case SentryResolveIssue(issue=issue) | SentryIgnoreIssue(issue=issue):
            status = "resolved" if isinstance(action, SentryResolveIssue) else "ignored"
            return Call(
                kind=kind,
                method="PUT",
                url=f"{sentry}/api/0/issues/{_issue(issue, incident)}/",
                body={"status": status},
                bearer_env=integrations.sentry.token_env,
            )
        case HttpCheck(url=url, expect_status=expect_status, expect_json=expect_json):
            return Call(
                kind=kind,
                method="GET",
                url=url,
                expect_status=expect_status,
                expect_json=expect_json,
            )
        case SignedHttp(url=url, method=method, body=fields, secret_env=secret_env):
            return Call(
                kind=kind,
                method=method,
                url=url,
                body={**fields, "incident_id": incident.incident_id, "tenant": incident.tenant},
                signing_env=secret_env,
            )


def shown(call: Call) -> str:
    """``heroku.restart_dyno: DELETE https://api.heroku.com/apps/raxx-prod/dynos/web``
    and the body's parameters; never a header, never a credential."""
    said = f"{call.kind}: {call.method} {call.url}"
    if call.body:
        said += " " + json.dumps(call.body, sort_keys=True)
    if call.expect_status is not None:
        said += f" (expects {call.expect_status}"
        if call.expect_json is not None:
            said += f", {call.expect_json.path} == {json.dumps(call.expect_json.equals)}"
        said += ")"
    return scrub(said)


def _dig(document: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(document, dict) and key in document:
            document = document[key]
        elif isinstance(document, list) and key.isdigit() and int(key) < len(document):
            document = document[int(key)]
        else:
            return _MISSING
    return document


_MISSING = object()


def _decoded(text: str) -> Any:
    """The answer's JSON (``_MISSING`` when it is not JSON)."""
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def judge(call: Call, status: int, text: str) -> Result:
    """The finding of an answer (one function: every kind's answer is classified here)."""
    quoted = scrub(" ".join(text.split()))[:_SAID]
    if call.expect_status is not None:
        if status != call.expect_status:
            return Result(
                finding="failed",
                status=status,
                summary=f"answered {status}, expected {call.expect_status}",
            )
        if call.expect_json is not None:
            found = _dig(_decoded(text), call.expect_json.path)
            if found is _MISSING or found != call.expect_json.equals:
                shown_found = "nothing" if found is _MISSING else json.dumps(found)[:80]
                return Result(
                    finding="failed",
                    status=status,
                    summary=f"answered {status}, but {call.expect_json.path} is "
                    f"{shown_found}, expected {json.dumps(call.expect_json.equals)}",
                )
        return Result(finding="ok", status=status, summary=f"answered {status} as expected")
    if not 200 <= status < 300:
        return Result(finding="failed", status=status, summary=f"answered {status}: {quoted}")
    if call.kind == "sentry.latest_event":
        event = _decoded(text)
        if isinstance(event, dict):
            what = str(event.get("title") or event.get("message") or "")[:_SAID]
            return Result(
                finding="ok",
                status=status,
                summary=f"latest event {str(event.get('eventID', '?'))[:40]} at "
                f"{str(event.get('dateCreated', '?'))[:40]}: {scrub(what)}",
            )
    return Result(finding="ok", status=status, summary=f"answered {status}")


async def perform(
    call: Call, registry: Registry, client: httpx.AsyncClient, *, now_s: int
) -> Result:
    """Make ``call`` once and classify its answer. A missing credential sends nothing."""
    headers = {"Accept": call.accept, "User-Agent": "EyeTok-playbooks"}
    content = json.dumps(call.body).encode() if call.body is not None else None
    if content is not None:
        headers["Content-Type"] = "application/json"
    if call.bearer_env is not None:
        token = registry.secret(call.bearer_env)
        if token is None:
            return Result(
                finding="unreachable",
                status=None,
                summary=f"not sent: {call.bearer_env} is not set in the environment",
            )
        headers["Authorization"] = f"Bearer {token}"
    if call.signing_env is not None:
        secret = registry.secret(call.signing_env)
        if secret is None:
            return Result(
                finding="unreachable",
                status=None,
                summary=f"not sent: {call.signing_env} is not set in the environment",
            )
        msg_id = "msg_" + secrets.token_hex(12)
        try:
            headers |= standard_webhooks.webhook_headers([secret], msg_id, now_s, content or b"")
        except ValueError as exc:
            return Result(
                finding="unreachable",
                status=None,
                summary=f"not sent: {call.signing_env} is not a Standard Webhooks secret ({exc})",
            )
    try:
        response = await client.request(call.method, call.url, content=content, headers=headers)
    except httpx.TimeoutException:
        return Result(finding="unreachable", status=None, summary="no answer in time")
    except httpx.TransportError as exc:
        return Result(
            finding="unreachable",
            status=None,
            summary=f"no answer: {type(exc).__name__}",
        )
    return judge(call, response.status_code, response.text)
