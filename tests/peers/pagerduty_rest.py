"""The fake PagerDuty's REST API v2 side (the Events API side is harness/peers/pagerduty.py):
users and one schedule's layer, as the on-call sync calls them.

- ``GET /users?query=`` / ``GET /users/{id}`` / ``POST /users`` (``From`` required);
- ``GET /schedules/{id}`` / ``PUT /schedules/{id}`` (its first layer's users);
- ``GET /oncalls?schedule_ids[]=``: the layer's user whose turn it is now (a weekly
  rotation from the layer's ``rotation_virtual_start``, on this process's wall clock).

``Authorization: Token token=<token>`` required (401 otherwise). ``puts`` counts the
schedule changes (an idempotent sync makes none).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler

WEEK_S = 7 * 86_400


class _Handler(PeerHTTPHandler):
    def _fake(self) -> FakePagerDutyRest:
        peer = self.peer
        assert isinstance(peer, FakePagerDutyRest)
        return peer

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Token token={self._fake().token}":
            return True
        self._send_json(401, {"error": {"message": "Unauthorized", "code": 2006}}, {})
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def do_GET(self) -> None:
        if not self._authorised():
            return
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, body = self._fake()._get(parts.path, query)
        self._send_json(status, body, {})

    def do_POST(self) -> None:
        body = self._body()
        if not self._authorised():
            return
        if urlsplit(self.path).path != "/users" or not self.headers.get("From"):
            self._send_json(400, {"error": {"message": "From header required"}}, {})
            return
        status, answer = self._fake()._create_user(body.get("user") or {})
        self._send_json(status, answer, {})

    def do_PUT(self) -> None:
        body = self._body()
        if not self._authorised():
            return
        status, answer = self._fake()._put_schedule(urlsplit(self.path).path, body)
        self._send_json(status, answer, {})


class FakePagerDutyRest(HttpPeer):
    label: ClassVar[str] = "FakePagerDutyRest"
    thread_name: ClassVar[str] = "fake-pagerduty-rest-{port}"
    handler = _Handler

    def __init__(self, *, token: str = "pd-api-token", schedule_id: str = "PSCHED1") -> None:
        super().__init__()
        self.token = token
        self.schedule_id = schedule_id
        self._users: dict[str, dict[str, str]] = {}
        self._layer_users: list[str] = []
        self._virtual_start = datetime(2026, 1, 5, 14, tzinfo=UTC).timestamp()
        self.puts = 0
        self.created = 0

    def add_user(self, email: str, name: str = "") -> str:
        with self._cond:
            user_id = f"PU{len(self._users) + 1:04d}"
            self._users[user_id] = {"id": user_id, "email": email, "name": name or email}
            return user_id

    @property
    def layer_emails(self) -> list[str]:
        with self._cond:
            return [self._users[u]["email"] for u in self._layer_users]

    def set_layer(self, emails: list[str]) -> None:
        with self._cond:
            by_email = {u["email"]: i for i, u in self._users.items()}
            self._layer_users = [by_email[e] for e in emails]

    def _user(self, user_id: str) -> dict[str, Any]:
        return {"type": "user", "summary": self._users[user_id]["name"], **self._users[user_id]}

    def _schedule(self) -> dict[str, Any]:
        return {
            "id": self.schedule_id,
            "type": "schedule",
            "name": "EyeTok on-call",
            "time_zone": "America/New_York",
            "schedule_layers": [
                {
                    "id": "PLAYER1",
                    "name": "Layer 1",
                    "start": "2026-01-05T09:00:00-05:00",
                    "rotation_virtual_start": "2026-01-05T09:00:00-05:00",
                    "rotation_turn_length_seconds": WEEK_S,
                    "users": [
                        {"user": {"id": u, "type": "user_reference"}} for u in self._layer_users
                    ],
                }
            ],
        }

    def _get(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            if path == "/users":
                wanted = query.get("query", "").lower()
                found = [self._user(u) for u in self._users if wanted in self._users[u]["email"]]
                return 200, {"users": found, "limit": 25, "offset": 0, "more": False}
            if path.startswith("/users/") and path[7:] in self._users:
                return 200, {"user": self._user(path[7:])}
            if path == f"/schedules/{self.schedule_id}":
                return 200, {"schedule": self._schedule()}
            if path == "/oncalls" and query.get("schedule_ids[]") == self.schedule_id:
                if not self._layer_users:
                    return 200, {"oncalls": []}
                turn = int((time.time() - self._virtual_start) // WEEK_S)
                user = self._layer_users[turn % len(self._layer_users)]
                return 200, {
                    "oncalls": [
                        {
                            "user": {"id": user, "summary": self._users[user]["name"]},
                            "schedule": {"id": self.schedule_id},
                            "escalation_level": 1,
                        }
                    ]
                }
            return 404, {"error": {"message": "Not Found", "code": 2100}}

    def _create_user(self, user: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        email = str(user.get("email", "")).lower()
        if not email or not user.get("name"):
            return 400, {"error": {"message": "Invalid Input Provided", "code": 2001}}
        with self._cond:
            if any(u["email"] == email for u in self._users.values()):
                return 400, {"error": {"message": "Email has already been taken"}}
            self.created += 1
        user_id = self.add_user(email, str(user["name"]))
        with self._cond:
            return 201, {"user": self._user(user_id)}

    def _put_schedule(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path != f"/schedules/{self.schedule_id}":
            return 404, {"error": {"message": "Not Found"}}
        layers = (body.get("schedule") or {}).get("schedule_layers") or []
        if not layers:
            return 400, {"error": {"message": "schedule_layers required"}}
        with self._cond:
            ids = [u["user"]["id"] for u in layers[0].get("users", [])]
            if any(u not in self._users for u in ids):
                return 400, {"error": {"message": "unknown user"}}
            self._layer_users = ids
            self.puts += 1
            return 200, {"schedule": self._schedule()}
