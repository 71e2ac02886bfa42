"""The Slack ownership handshake: a nonce DM'd to the EyeTok app, bound to a workspace.

1. :func:`new_nonce` makes 32 random bytes (hex); only its SHA-256 is stored.
2. :func:`workspace_of` asks Slack (``auth.test``) which workspace the sink's bot token
   belongs to; the handshake records that team id, and refuses to start when it is the
   operator's own workspace and the sink is not the operator's (:class:`Workspaces`,
   which the tenant API asks too): a tenant's sink there could post into any of the
   operator's channels.
3. The customer DMs the nonce to the app; the Events API brings it back with the
   ``team_id`` of the workspace it was sent in. It verifies the sink only when that is
   the token's workspace (:func:`nonce_candidates` finds the nonces in the text).

:func:`workspace_of` blocks in a worker thread (slack-sdk's ``WebClient``; its async
client needs asyncio).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import urllib.error
from datetime import timedelta
from http.client import HTTPException

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from eyetok.config import Settings
from eyetok.errors import EyeTokError
from eyetok.sinks.slack import SlackSinkConfig

AUTH_TEST_TIMEOUT_S = 10  # auth.test, asked once per handshake and per route check
NONCE_TTL = timedelta(hours=24)  # a nonce not DM'd within a day matches nothing
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


class WorkspaceError(EyeTokError):
    """Slack would not say which workspace a token belongs to (refused, unreachable)."""


def new_nonce() -> str:
    """32 random bytes, hex (64 characters): what the customer DMs to the app."""
    return secrets.token_hex(32)


def nonce_candidates(text: str) -> list[str]:
    """Every 64-hex-character word of a message (a nonce is one of them, if any)."""
    return list(dict.fromkeys(_HEX64.findall(text.lower())))


def _auth_test(token: str, api_url: str) -> str:
    client = WebClient(token=token, base_url=api_url, timeout=AUTH_TEST_TIMEOUT_S)
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        raise WorkspaceError(
            f"Slack refused auth.test: {error or exc.response.status_code}"
        ) from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as exc:
        raise WorkspaceError(f"cannot reach Slack for auth.test: {exc}") from exc
    team = answer.get("team_id")
    if not isinstance(team, str) or not team:
        raise WorkspaceError("Slack's auth.test answer names no team_id")
    return team


async def workspace_of(token: str, api_url: str) -> str:
    """The team id of the workspace ``token`` belongs to. Raises :class:`WorkspaceError`."""
    return await trio.to_thread.run_sync(_auth_test, token, api_url, abandon_on_cancel=True)


def _refusal(sink_id: str, tenant: str, workspace: str) -> str:
    return (
        f"sink {sink_id!r} of tenant {tenant!r} has a bot token in the operator's Slack "
        f"workspace {workspace}: a tenant's Slack sink must be in the tenant's own workspace"
    )


class Workspaces:
    """Which Slack workspace each bot token belongs to (``auth.test``, asked once per
    token), and whether a tenant's Slack sink is in the operator's. Owned by one actor."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._teams: dict[str, str] = {}

    async def team_of(self, token: str) -> str:
        """Raises :class:`WorkspaceError`."""
        if token not in self._teams:
            self._teams[token] = await workspace_of(token, self.api_url)
        return self._teams[token]

    async def operator_teams(self, settings: Settings) -> set[str]:
        """The workspaces of the operator tenant's Slack sinks (those Slack answers for)."""
        found: set[str] = set()
        for token in _operator_tokens(settings):
            with contextlib.suppress(WorkspaceError):
                found.add(await self.team_of(token))
        return found

    async def refusal(
        self, settings: Settings, sink_id: str, config: SlackSinkConfig, token: str | None
    ) -> str | None:
        """Why ``config`` (reading ``token``) may not be written, routed to or verified:
        a tenant's sink in the operator's workspace (None: it may, as far as can be told;
        a token Slack cannot place is refused by the handshake, which must place it)."""
        if settings.operator_side(config.tenant) or not token:
            return None
        if token in _operator_tokens(settings):
            return _refusal(sink_id, config.tenant, "(it is the operator's own bot token)")
        try:
            team = await self.team_of(token)
        except WorkspaceError:
            return None
        if team in await self.operator_teams(settings):
            return _refusal(sink_id, config.tenant, team)
        return None


def _operator_tokens(settings: Settings) -> set[str]:
    return {
        settings.sink_secrets[sink_id]
        for sink_id, config in settings.sinks.items()
        if isinstance(config, SlackSinkConfig)
        and config.tenant == settings.operator_tenant
        and sink_id in settings.sink_secrets
    }
