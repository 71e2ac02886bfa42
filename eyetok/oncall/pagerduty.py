"""PagerDuty's REST API v2, the part the on-call sync needs: users by email, a new user,
a schedule's layers, replacing a layer's users, and who is on call now.

``Authorization: Token token=...``; changes carry ``From`` (the requester's email), as
PagerDuty requires. Errors: :class:`PagerDutyApiError` naming the call and the status.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from eyetok.errors import EyeTokError

TIMEOUT_S = 10.0
ACCEPT = "application/vnd.pagerduty+json;version=2"


class PagerDutyApiError(EyeTokError):
    """PagerDuty's REST API refused or did not answer a call of the on-call sync."""


class PdUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    email: str
    name: str


class Layer(msgspec.Struct, frozen=True, kw_only=True):
    """The schedule's rotation layer the sync owns (its first): its users in turn order."""

    schedule_id: str
    layer: dict[str, Any]  # the layer as PagerDuty returned it (sent back with new users)
    user_ids: tuple[str, ...]


class PagerDutyRest:
    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str, sender: str) -> None:
        self._client = client
        self._base = base_url
        self._headers = {
            "authorization": f"Token token={token}",
            "accept": ACCEPT,
            "from": sender,
        }

    def __repr__(self) -> str:
        return f"PagerDutyRest({self._base})"

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self._base + path
        try:
            response = await self._client.request(
                method, url, headers=self._headers, timeout=TIMEOUT_S, **kwargs
            )
        except httpx.HTTPError as exc:
            raise PagerDutyApiError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code not in (200, 201):
            raise PagerDutyApiError(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise PagerDutyApiError(f"{method} {path}: not JSON") from exc
        if not isinstance(body, dict):
            raise PagerDutyApiError(f"{method} {path}: not a JSON object")
        return body

    async def user_by_email(self, email: str) -> PdUser | None:
        body = await self._call("GET", "/users", params={"query": email})
        for user in body.get("users", []):
            if str(user.get("email", "")).lower() == email:
                return PdUser(user_id=user["id"], email=email, name=user.get("name", email))
        return None

    async def user(self, user_id: str) -> PdUser:
        user = (await self._call("GET", f"/users/{user_id}")).get("user") or {}
        return PdUser(
            user_id=user_id,
            email=str(user.get("email", "")).lower(),
            name=user.get("name", user_id),
        )

    async def create_user(self, email: str, name: str) -> PdUser:
        body = {"user": {"type": "user", "name": name, "email": email, "role": "user"}}
        user = (await self._call("POST", "/users", json=body)).get("user") or {}
        if not user.get("id"):
            raise PagerDutyApiError("POST /users: no user id in the answer")
        return PdUser(user_id=user["id"], email=email, name=name)

    async def layer(self, schedule_id: str) -> Layer:
        schedule = (await self._call("GET", f"/schedules/{schedule_id}")).get("schedule") or {}
        layers = schedule.get("schedule_layers") or []
        if not layers:
            raise PagerDutyApiError(f"schedule {schedule_id} has no layer")
        first = layers[0]
        users = tuple(u["user"]["id"] for u in first.get("users", []) if u.get("user"))
        return Layer(schedule_id=schedule_id, layer=first, user_ids=users)

    async def set_layer_users(self, layer: Layer, user_ids: tuple[str, ...]) -> None:
        updated = {
            **layer.layer,
            "users": [{"user": {"id": u, "type": "user_reference"}} for u in user_ids],
        }
        await self._call(
            "PUT",
            f"/schedules/{layer.schedule_id}",
            json={"schedule": {"type": "schedule", "schedule_layers": [updated]}},
        )

    async def on_call_now(self, schedule_id: str) -> str | None:
        """The user id on call now in the schedule (None: nobody)."""
        body = await self._call("GET", "/oncalls", params={"schedule_ids[]": schedule_id})
        for oncall in body.get("oncalls", []):
            user = oncall.get("user") or {}
            if user.get("id"):
                return str(user["id"])
        return None
