"""The FreeScout API client (the API & Webhooks module): the four calls the ticket trail
makes, each with the ``X-FreeScout-API-Key`` header, every answer classified in
:func:`classify`. The shapes it sends are :mod:`eyetok.freescout`'s.

Errors::

    DeliveryError
    +-- RetryableDeliveryError   5xx, 408, 429 (Retry-After honoured), unreachable
    +-- PermanentDeliveryError   any other 4xx
        +-- FreeScoutRefusedError    401/403: the API key is wrong or lacks the rights
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from eyetok.errors import PermanentDeliveryError, RetryableDeliveryError
from eyetok.freescout import FreeScoutLink, marker_of

API_KEY_HEADER = "X-FreeScout-API-Key"


class FreeScoutRefusedError(PermanentDeliveryError):
    """FreeScout refused the API key (401) or its rights (403): never retried."""


def classify(status: int, retry_after: str | None, what: str) -> Exception:
    """The error a failed FreeScout answer is (HTTP status, Retry-After)."""
    after = _seconds(retry_after)
    if status == 429:
        return RetryableDeliveryError(
            f"{what}: rate limited by FreeScout (HTTP 429)", retry_after=after or 1.0
        )
    if status >= 500 or status == 408:
        return RetryableDeliveryError(
            f"{what}: FreeScout answered HTTP {status}", retry_after=after
        )
    if status in (401, 403):
        return FreeScoutRefusedError(
            f"{what}: FreeScout refused the API key (HTTP {status}); check FREESCOUT_API_KEY "
            "and its rights in Manage > API & Webhooks"
        )
    return PermanentDeliveryError(f"{what}: FreeScout refused the request (HTTP {status})")


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (FreeScout and its proxies send seconds), None if absent."""
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: int
    number: int | None = None


class _Found(msgspec.Struct, frozen=True):
    id: int
    subject: str = ""
    number: int | None = None


class _Embedded(msgspec.Struct, frozen=True):
    conversations: list[_Found] = msgspec.field(default_factory=list)


class _Listing(msgspec.Struct, frozen=True):
    embedded: _Embedded = msgspec.field(default_factory=_Embedded, name="_embedded")


class FreeScoutClient:
    """The four calls the trail makes. Each raises a :mod:`eyetok.errors` delivery error
    (see :func:`classify`) or returns what FreeScout answered."""

    def __init__(
        self, link: FreeScoutLink, *, timeout_s: float, client: httpx.AsyncClient | None = None
    ) -> None:
        self._link = link
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, what: str, *, body: object = None, params: Any = None
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method,
                f"{self._link.url}{path}",
                json=body,
                params=params,
                headers={API_KEY_HEADER: self._link.api_key, "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(
                f"{what}: cannot reach FreeScout: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 300:
            raise classify(response.status_code, response.headers.get("Retry-After"), what)
        return response

    async def find(self, incident_id: str) -> Conversation | None:
        """The conversation whose subject carries the incident's marker, if one exists."""
        marker = marker_of(incident_id)
        response = await self._call(
            "GET",
            "/api/conversations",
            "find the conversation",
            params={"mailboxId": self._link.mailbox_id, "subject": marker},
        )
        try:
            listing = msgspec.json.decode(response.content, type=_Listing)
        except msgspec.DecodeError as exc:
            raise RetryableDeliveryError(
                f"find the conversation: unreadable answer: {exc}"
            ) from exc
        for found in listing.embedded.conversations:
            if marker in found.subject:
                return Conversation(conversation_id=found.id, number=found.number)
        return None

    async def create(self, body: dict[str, Any]) -> Conversation:
        response = await self._call(
            "POST", "/api/conversations", "open the conversation", body=body
        )
        resource = response.headers.get("Resource-ID", "")
        number: int | None = None
        try:
            answer = msgspec.json.decode(response.content) if response.content else {}
        except msgspec.DecodeError:
            answer = {}
        if isinstance(answer, dict):
            resource = resource or str(answer.get("id", ""))
            raw_number = answer.get("number")
            number = raw_number if isinstance(raw_number, int) else None
        if not resource.isdigit():
            raise PermanentDeliveryError(
                "open the conversation: FreeScout answered without the conversation id"
            )
        return Conversation(conversation_id=int(resource), number=number)

    async def add_note(self, conversation_id: int, body: dict[str, Any]) -> None:
        await self._call(
            "POST", f"/api/conversations/{conversation_id}/threads", "add a note", body=body
        )

    async def close(self, conversation_id: int, body: dict[str, Any]) -> None:
        await self._call(
            "PUT", f"/api/conversations/{conversation_id}", "close the conversation", body=body
        )
