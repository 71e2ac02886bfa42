"""Local stand-ins for the APIs a playbook calls, on 127.0.0.1; each records every call.

* :class:`FakeHeroku` — the Heroku Platform API's dyno restart
  (``DELETE /apps/{app}/dynos/{dyno}``, 202) and formation update
  (``PATCH /apps/{app}/formation/{type}``), insisting as Heroku does on
  ``Accept: application/vnd.heroku+json; version=3`` (400 otherwise) and a bearer token
  (401 ``unauthorized`` otherwise); an unknown app is 404 ``not_found``.
* :class:`FakeSentry` — Sentry's ``GET /api/0/issues/{id}/events/latest/`` and
  ``PUT /api/0/issues/{id}/`` ``{"status": ...}``, bearer token, 404 for an unknown issue.
* :class:`FakeService` — your app's health endpoint: answers every ``GET`` with the status
  and JSON set in ``health`` (a test flips it to break the app).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from harness.peers.base import HttpPeer, PeerHTTPHandler

HEROKU_ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass(frozen=True)
class ApiCall:
    """One request a fake API received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or None


class _Handler(PeerHTTPHandler):
    server_version = "FakePlatform/1.0"
    timeout = 30

    def do_GET(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        peer = self.peer
        assert isinstance(peer, _Platform)
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        call = ApiCall(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with peer._cond:
            peer.calls.append(call)
            peer._cond.notify_all()
        if peer.delay_s:
            time.sleep(peer.delay_s)  # a handler thread: a slow API, never the event loop
        status, answer = peer.answer(call)
        self._send_json(status, answer, {})


class _Platform(HttpPeer):
    handler = _Handler
    token = "test-api-token"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.calls: list[ApiCall] = []
        self.delay_s = 0.0  # how long every answer takes

    def answer(self, call: ApiCall) -> tuple[int, Any]:
        raise NotImplementedError

    def _authorised(self, call: ApiCall) -> bool:
        return call.headers.get("authorization") == f"Bearer {self.token}"

    def wait_calls(self, count: int, timeout: float = 10.0) -> list[ApiCall]:
        self._wait(lambda: len(self.calls) >= count, timeout, f"{count} call(s)")
        with self._cond:
            return list(self.calls)

    def _seen(self) -> str:
        return f"calls: {[(c.method, c.path) for c in self.calls]}"


_DYNO = re.compile(r"^/apps/(?P<app>[^/]+)/dynos/(?P<dyno>[^/]+)$")
_FORMATION = re.compile(r"^/apps/(?P<app>[^/]+)/formation/(?P<type>[^/]+)$")


class FakeHeroku(_Platform):
    label = "FakeHeroku"
    thread_name = "fake-heroku-{port}"

    def __init__(self, apps: tuple[str, ...] = ("raxx-prod",), **kw: Any) -> None:
        super().__init__(**kw)
        self.apps = set(apps)
        self.formation: dict[tuple[str, str], int] = {}

    def answer(self, call: ApiCall) -> tuple[int, Any]:
        if call.headers.get("accept") != HEROKU_ACCEPT:
            return 400, {"id": "bad_request", "message": "Accept must ask for version=3"}
        if not self._authorised(call):
            return 401, {"id": "unauthorized", "message": "Invalid credentials provided."}
        if (m := _DYNO.match(call.path)) and call.method == "DELETE":
            if m["app"] not in self.apps:
                return 404, {"id": "not_found", "message": "Couldn't find that app."}
            return 202, {}
        if (m := _FORMATION.match(call.path)) and call.method == "PATCH":
            if m["app"] not in self.apps:
                return 404, {"id": "not_found", "message": "Couldn't find that app."}
            if not isinstance(call.body, dict) or not isinstance(call.body.get("quantity"), int):
                return 422, {"id": "invalid_params", "message": "quantity is required"}
            self.formation[(m["app"], m["type"])] = call.body["quantity"]
            return 200, {
                "type": m["type"],
                "quantity": call.body["quantity"],
                "size": "standard-1X",
            }
        return 404, {"id": "not_found", "message": "no such endpoint"}


_LATEST = re.compile(r"^/api/0/issues/(?P<issue>[^/]+)/events/latest/$")
_ISSUE = re.compile(r"^/api/0/issues/(?P<issue>[^/]+)/$")


class FakeSentry(_Platform):
    label = "FakeSentry"
    thread_name = "fake-sentry-{port}"

    def __init__(self, issues: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.issues: dict[str, str] = {issue: "unresolved" for issue in issues}

    def answer(self, call: ApiCall) -> tuple[int, Any]:
        if not self._authorised(call):
            return 401, {"detail": "Invalid token"}
        if (m := _LATEST.match(call.path)) and call.method == "GET":
            if m["issue"] not in self.issues:
                return 404, {"detail": "The requested resource does not exist"}
            return 200, {
                "eventID": "9fac2ceed9344f2bbfdd1fdacb0ed9b1",
                "dateCreated": "2026-12-04T20:31:07Z",
                "title": "OperationalError: H12 Request timeout",
                "message": "Request timeout",
            }
        if (m := _ISSUE.match(call.path)) and call.method == "PUT":
            if m["issue"] not in self.issues:
                return 404, {"detail": "The requested resource does not exist"}
            status = call.body.get("status") if isinstance(call.body, dict) else None
            if status not in ("resolved", "ignored", "unresolved"):
                return 400, {"status": ["not a valid choice"]}
            self.issues[m["issue"]] = status
            return 200, {"id": m["issue"], "status": status}
        return 404, {"detail": "The requested resource does not exist"}


class FakeService(_Platform):
    """Your app: ``health`` is what every GET answers (status, JSON); any other method is
    recorded and answered 200 (a signed generic action's target)."""

    label = "FakeService"
    thread_name = "fake-service-{port}"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.health: tuple[int, Any] = (200, {"status": "ok"})

    def answer(self, call: ApiCall) -> tuple[int, Any]:
        if call.method == "GET":
            return self.health
        return 200, {"received": True}
