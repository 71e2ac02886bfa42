"""A fake Infisical on 127.0.0.1: the endpoints the official ``infisicalsdk`` client calls.

- ``POST /api/v1/auth/universal-auth/login`` ``{"clientId", "clientSecret"}``: a machine
  identity's login; 401 ``{"message": ...}`` for an unknown identity.
- ``GET /api/v3/secrets/raw?workspaceId=&environment=&secretPath=``: the secrets of one
  folder (``{"secrets": [...], "imports": []}``), bearer token required.
- ``GET /api/v3/secrets/raw/{name}?workspaceId=&environment=&secretPath=``: one secret.

Secrets live per (project, environment, path); ``put`` changes one (a rotation in the
vault), ``logins`` and ``reads`` count the calls.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler

LOGIN_PATH = "/api/v1/auth/universal-auth/login"
SECRETS_PATH = "/api/v3/secrets/raw"


def _folder(path: str) -> str:
    return "/" + path.strip("/")


class _Handler(PeerHTTPHandler):
    def _fake(self) -> FakeInfisical:
        peer = self.peer
        assert isinstance(peer, FakeInfisical)
        return peer

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def do_POST(self) -> None:
        body = self._body()
        if urlsplit(self.path).path != LOGIN_PATH:
            self._send_json(404, {"message": "Not Found"}, {})
            return
        status, answer = self._fake()._login(body.get("clientId"), body.get("clientSecret"))
        self._send_json(status, answer, {})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        fake = self._fake()
        if not fake._authorised(token):
            self._send_json(401, {"message": "Token missing or expired"}, {})
            return
        if parts.path == SECRETS_PATH:
            status, answer = fake._list(query)
        elif parts.path.startswith(SECRETS_PATH + "/"):
            name = unquote(parts.path[len(SECRETS_PATH) + 1 :])
            status, answer = fake._get(name, query)
        else:
            status, answer = 404, {"message": "Not Found"}
        self._send_json(status, answer, {})


class FakeInfisical(HttpPeer):
    label: ClassVar[str] = "FakeInfisical"
    thread_name: ClassVar[str] = "fake-infisical-{port}"
    handler = _Handler

    def __init__(
        self,
        *,
        client_id: str = "eyetok-identity",
        client_secret: str = "identity-secret",
        project_id: str = "proj-raxx",
        environment: str = "prod",
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.project_id = project_id
        self.environment = environment
        self._tokens: set[str] = set()
        self._secrets: dict[tuple[str, str, str], dict[str, tuple[str, int]]] = {}
        self.logins = 0
        self.reads = 0

    def env(self, path: str = "/Raxx/Eyetok/") -> dict[str, str]:
        """The ``INFISICAL_*`` settings that reach this fake."""
        return {
            "INFISICAL_CLIENT_ID": self.client_id,
            "INFISICAL_CLIENT_SECRET": self.client_secret,
            "INFISICAL_PROJECT_ID": self.project_id,
            "INFISICAL_ENVIRONMENT": self.environment,
            "INFISICAL_SITE_URL": self.base_url,
            "INFISICAL_SECRET_PATH": path,
        }

    def put(self, name: str, value: str, *, path: str = "/Raxx/Eyetok/") -> None:
        """Create or change a secret in the project's environment (a new version)."""
        with self._cond:
            folder = self._secrets.setdefault(
                (self.project_id, self.environment, _folder(path)), {}
            )
            version = folder[name][1] + 1 if name in folder else 1
            folder[name] = (value, version)

    # -- handler side -----------------------------------------------------------

    def _login(self, client_id: Any, client_secret: Any) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.logins += 1
            if client_id != self.client_id or client_secret != self.client_secret:
                return 401, {"statusCode": 401, "message": "Invalid credentials"}
            token = secrets.token_urlsafe(24)
            self._tokens.add(token)
        return 200, {
            "accessToken": token,
            "expiresIn": 7200,
            "accessTokenMaxTTL": 43200,
            "tokenType": "Bearer",
        }

    def _authorised(self, token: str) -> bool:
        with self._cond:
            return token in self._tokens

    def _folder_of(self, query: dict[str, str]) -> dict[str, tuple[str, int]] | None:
        key = (
            query.get("workspaceId", ""),
            query.get("environment", ""),
            _folder(query.get("secretPath", "/")),
        )
        if key[0] != self.project_id or key[1] != self.environment:
            return None
        return self._secrets.get(key, {})

    def _list(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.reads += 1
            folder = self._folder_of(query)
            if folder is None:
                return 404, {"message": "Project or environment not found"}
            listed = [
                self._secret(name, value, version, query)
                for name, (value, version) in sorted(folder.items())
            ]
        return 200, {"secrets": listed, "imports": []}

    def _get(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.reads += 1
            folder = self._folder_of(query)
            if folder is None or name not in folder:
                return 404, {"message": f"Secret with name '{name}' not found"}
            value, version = folder[name]
        return 200, {"secret": self._secret(name, value, version, query)}

    def _secret(self, name: str, value: str, version: int, query: dict[str, str]) -> dict[str, Any]:
        return {
            "id": f"sec-{name.lower()}",
            "_id": f"sec-{name.lower()}",
            "workspace": self.project_id,
            "environment": self.environment,
            "version": version,
            "type": "shared",
            "secretKey": name,
            "secretValue": value,
            "secretComment": "",
            "secretPath": _folder(query.get("secretPath", "/")),
            "createdAt": "2026-12-01T00:00:00.000Z",
            "updatedAt": "2026-12-01T00:00:00.000Z",
            "tags": [],
        }
