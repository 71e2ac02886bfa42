"""Slack modals: ``views.open`` with the ``trigger_id`` of a button press.

A modal opens in the workspace the button was pressed in, with the bot token of the
Slack sink verified in that workspace (the ownership handshake recorded its team id):
one tenant's button never opens a view with another tenant's token. slack-sdk's
``WebClient`` runs in a worker thread, as for delivery; Slack lets a trigger id open a
view within 3 seconds, so the call is bounded by the sink's request timeout.
"""

from __future__ import annotations

import urllib.error
from http.client import HTTPException
from typing import Any, Protocol

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.verification import Verification, refusal


class _Verifications(Protocol):
    async def verifications(self) -> tuple[Verification, ...]: ...


class SlackModals:
    def __init__(self, settings: Settings, verifier: _Verifications, clock: Clock) -> None:
        self._settings = settings
        self._verifier = verifier
        self._clock = clock

    async def _token_of(self, team_id: str) -> str | None:
        now = self._clock.now()
        for v in await self._verifier.verifications():
            if v.sink_type == "slack" and v.workspace == team_id and refusal(v, now) is None:
                token = self._settings.sink_secrets.get(v.sink_id)
                if token:
                    return token
        return None

    async def open_view(self, team_id: str, trigger_id: str, view: dict[str, Any]) -> str | None:
        """Open ``view``; None, or why it could not be opened."""
        if not trigger_id:
            return "the interaction carried no trigger_id"
        token = await self._token_of(team_id)
        if token is None:
            return f"no verified Slack sink is in workspace {team_id or '(none named)'}"
        timeout: Any = self._settings.slack.request_timeout_s
        client = WebClient(
            token=token, base_url=self._settings.slack_api_url, timeout=timeout, retry_handlers=[]
        )

        def call() -> str | None:
            try:
                client.views_open(trigger_id=trigger_id, view=view)
            except SlackApiError as exc:
                data = exc.response.data
                error = data.get("error") if isinstance(data, dict) else None
                return f"Slack refused views.open: {error or exc.response.status_code}"
            except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as exc:
                return f"cannot reach Slack for views.open: {exc}"
            return None

        return await trio.to_thread.run_sync(call, abandon_on_cancel=True)
