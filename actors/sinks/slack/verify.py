"""The Slack ownership handshake: a nonce DM'd to the EyeTok app, bound to a workspace.

1. :func:`new_nonce` makes 32 random bytes (hex); only its SHA-256 is stored.
2. :func:`workspace_of` asks Slack (``auth.test``) which workspace the sink's bot token
   belongs to; the handshake records that team id, and refuses to start when it is the
   operator's own workspace and the sink is not the operator's (:func:`operator_refusal`):
   a tenant's sink there could post into any of the operator's channels.
3. The customer DMs the nonce to the app; the Events API brings it back with the
   ``team_id`` of the workspace it was sent in. It verifies the sink only when that is
   the token's workspace (:func:`nonce_candidates` finds the nonces in the text).

:func:`workspace_of` blocks in a worker thread (slack-sdk's ``WebClient``; its async
client needs asyncio).
"""

from __future__ import annotations

import re
import secrets
import urllib.error
from collections.abc import Iterable
from datetime import timedelta
from http.client import HTTPException

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from actors.sinks.slack.config import REQUEST_TIMEOUT_S
from eyetok.errors import EyeTokError

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
    client = WebClient(token=token, base_url=api_url, timeout=REQUEST_TIMEOUT_S)
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
    return await trio.to_thread.run_sync(_auth_test, token, api_url)


def operator_refusal(
    *, sink_id: str, tenant: str, operator_side: bool, workspace: str, operator: Iterable[str]
) -> str | None:
    """Why a Slack sink may not be verified or routed to: a tenant's sink whose token is
    in one of the ``operator`` workspaces, unless the tenant is the operator's own
    (``operator_side``: ``Settings.operator_side``). None: it may."""
    if operator_side or workspace not in set(operator):
        return None
    return (
        f"sink {sink_id!r} of tenant {tenant!r} has a bot token in the operator's Slack "
        f"workspace {workspace}: a tenant's Slack sink must be in the tenant's own workspace"
    )
