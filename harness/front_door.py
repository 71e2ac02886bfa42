"""The harness's only ways into a daemon: its hooks and its operator API.

Alerts go in through ``POST /hooks/{probe,generic}/{tenant}`` exactly as a customer's
probe or monitor sends them (a bearer token, or a Standard Webhooks signature); what
became of them is read from the operator API with the root token. Nothing here imports
the daemon's internals.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import httpx

from eyetok import standard_webhooks
from eyetok.receipts import Receipt, encode_receipt

TIMEOUT_S = 15.0


class FrontDoorError(Exception):
    """The daemon answered something the harness cannot use (named in the message)."""


def _why(response: httpx.Response) -> str:
    """The status and the daemon's own words (its JSON ``error``), not an HTML page."""
    try:
        said = response.json()
    except ValueError:
        return f"{response.status_code} {response.reason_phrase}"
    error = said.get("error") if isinstance(said, dict) else None
    return f"{response.status_code}: {error or response.text[:300]}"


class HookCredentials:
    """One tenant's hook credential: a bearer token, or a ``whsec_`` secret to sign with."""

    def __init__(self, *, token: str | None = None, secret: str | None = None) -> None:
        if token is None and secret is None:
            raise ValueError("a tenant's hook needs a token or a whsec_ secret")
        self.token = token
        self.secret = secret

    def headers(self, body: bytes, now: datetime) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        else:
            assert self.secret is not None
            headers |= standard_webhooks.webhook_headers(
                [self.secret], "msg_drill_" + secrets.token_hex(8), int(now.timestamp()), body
            )
        return headers


class FrontDoor:
    """An HTTP client of one daemon (its base URL) holding the root token."""

    def __init__(self, url: str, root_token: str) -> None:
        self.url = url.rstrip("/")
        self._auth = {"authorization": f"Bearer {root_token}"}
        self._client = httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT_S)

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- the hooks ----------------------------------------------------------------------

    async def post_hook(
        self, source: str, tenant: str, body: bytes, credentials: HookCredentials, now: datetime
    ) -> dict[str, Any]:
        """POST a hook body; the 202 answer, else :class:`FrontDoorError`."""
        response = await self._client.post(
            f"/hooks/{source}/{tenant}", content=body, headers=credentials.headers(body, now)
        )
        if response.status_code != 202:
            raise FrontDoorError(f"POST /hooks/{source}/{tenant} answered {_why(response)}")
        answer: dict[str, Any] = response.json()
        return answer

    # --- the operator API ---------------------------------------------------------------

    async def _get(self, path: str, **params: str) -> dict[str, Any]:
        response = await self._client.get(path, params=params, headers=self._auth)
        if response.status_code != 200:
            raise FrontDoorError(f"GET {path} answered {_why(response)}")
        answer: dict[str, Any] = response.json()
        return answer

    async def _post(self, path: str, body: object, *, expect: int = 200) -> dict[str, Any]:
        response = await self._client.post(path, json=body, headers=self._auth)
        if response.status_code != expect:
            raise FrontDoorError(f"POST {path} answered {_why(response)}")
        answer: dict[str, Any] = response.json()
        return answer

    async def ready(self) -> bool:
        try:
            return (await self._client.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def about(self) -> dict[str, Any]:
        return await self._get("/api/v1/about")

    async def sinks(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await self._get("/api/v1/sinks"))["sinks"]
        return rows

    async def start_verification(self, sink_id: str) -> dict[str, Any]:
        return await self._post(
            f"/api/v1/sinks/{sink_id}/verification", {"requested_by": "eyetok-drill"}
        )

    async def slack_event(self, body: bytes, headers: dict[str, str]) -> None:
        response = await self._client.post("/slack/events", content=body, headers=headers)
        if response.status_code != 200:
            raise FrontDoorError(f"POST /slack/events answered {_why(response)}")

    async def open_link(self, path: str, params: dict[str, str] | None = None) -> None:
        response = await self._client.get(path, params=params)
        if response.status_code != 200:
            raise FrontDoorError(f"GET {path} answered {_why(response)}")

    async def notifications(
        self, tenant: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        params = {}
        if tenant is not None:
            params["tenant"] = tenant
        if since is not None:
            params["since"] = since.isoformat()
        rows: list[dict[str, Any]] = (await self._get("/api/v1/notifications", **params))[
            "notifications"
        ]
        return rows

    async def audit(
        self, tenant: str | None = None, event: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        params = {}
        if tenant is not None:
            params["tenant"] = tenant
        if event is not None:
            params["event"] = event
        if since is not None:
            params["since"] = since.isoformat()
        rows: list[dict[str, Any]] = (await self._get("/api/v1/audit", **params))["audit"]
        return rows

    async def explain(
        self, tenant: str, hook: str, body: object, at: datetime
    ) -> list[dict[str, Any]]:
        answer = await self._post(
            "/api/v1/explain", {"tenant": tenant, "hook": hook, "at": at.isoformat(), "body": body}
        )
        rows: list[dict[str, Any]] = answer["explanations"]
        return rows

    async def suppressions(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await self._get("/api/v1/suppressions"))["suppressions"]
        return rows

    async def budgets(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await self._get("/api/v1/budgets"))["budgets"]
        return rows

    async def record_receipt(self, receipt: Receipt) -> dict[str, Any]:
        response = await self._client.post(
            "/api/v1/drills/receipts",
            content=encode_receipt(receipt),
            headers={**self._auth, "content-type": "application/json"},
        )
        if response.status_code != 201:
            raise FrontDoorError(f"POST /api/v1/drills/receipts answered {_why(response)}")
        answer: dict[str, Any] = response.json()
        return answer
