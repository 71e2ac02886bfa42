"""A fake IdP speaking SCIM 2.0 (RFC 7644) on 127.0.0.1: ``GET /Groups`` (with the
``displayName eq "..."`` filter), ``GET /Groups/{id}``, ``GET /Users/{id}``; bearer token
required (401 otherwise). ``add_user``/``set_group``/``deactivate`` change the directory."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_FILTER = re.compile(r'^displayName eq "((?:[^"\\]|\\.)*)"$')


class _Handler(PeerHTTPHandler):
    json_type: ClassVar[str] = "application/scim+json"

    def do_GET(self) -> None:
        fake = self.peer
        assert isinstance(fake, FakeScim)
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            self._send_json(401, {"schemas": [ERROR], "status": "401"}, {})
            return
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, body = fake._answer(unquote(parts.path), query)
        self._send_json(status, body, {})


class FakeScim(HttpPeer):
    label: ClassVar[str] = "FakeScim"
    thread_name: ClassVar[str] = "fake-scim-{port}"
    handler = _Handler

    def __init__(self, *, token: str = "scim-token") -> None:
        super().__init__()
        self.token = token
        self._users: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, tuple[str, list[str]]] = {}  # id -> (displayName, member ids)
        self.requests = 0

    def add_user(
        self, user_id: str, email: str, *, slack: str | None = None, roles: tuple[str, ...] = ()
    ) -> None:
        user: dict[str, Any] = {
            "schemas": [USER],
            "id": user_id,
            "userName": email,
            "displayName": email.split("@")[0].title(),
            "active": True,
            "emails": [{"value": email, "primary": True, "type": "work"}],
            "roles": [{"value": role} for role in roles],
        }
        if slack:
            user["ims"] = [{"value": slack, "type": "slack"}]
        with self._cond:
            self._users[user_id] = user

    def deactivate(self, user_id: str) -> None:
        with self._cond:
            self._users[user_id]["active"] = False

    def set_group(self, group_id: str, name: str, members: list[str]) -> None:
        with self._cond:
            self._groups[group_id] = (name, list(members))

    def _group(self, group_id: str) -> dict[str, Any]:
        name, members = self._groups[group_id]
        return {
            "schemas": [GROUP],
            "id": group_id,
            "displayName": name,
            "members": [
                {"value": m, "$ref": f"{self.base_url}/Users/{m}", "type": "User"} for m in members
            ],
        }

    def _answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.requests += 1
            if path == "/Groups":
                wanted = None
                if "filter" in query:
                    matched = _FILTER.match(query["filter"])
                    if matched is None:
                        return 400, {
                            "schemas": [ERROR],
                            "status": "400",
                            "scimType": "invalidFilter",
                        }
                    wanted = matched.group(1).replace('\\"', '"')
                found = [
                    self._group(g)
                    for g, (name, _) in sorted(self._groups.items())
                    if wanted is None or name == wanted
                ]
                return 200, {
                    "schemas": [LIST],
                    "totalResults": len(found),
                    "startIndex": 1,
                    "itemsPerPage": len(found),
                    "Resources": found,
                }
            if path.startswith("/Groups/") and path[8:] in self._groups:
                return 200, self._group(path[8:])
            if path.startswith("/Users/") and path[7:] in self._users:
                return 200, self._users[path[7:]]
            return 404, {"schemas": [ERROR], "status": "404", "detail": "not found"}
