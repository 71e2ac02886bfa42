"""What a Slack interaction may do, by the workspace it came from, and Slack modals.

The ownership handshake recorded the workspace (team id) of every verified Slack sink,
and each sink has one owner tenant: a click from a workspace may decide only on the
incidents of the tenants whose verified sinks are in it (a person in tenant B's
workspace cannot acknowledge tenant A's incident by editing a payload's value). A modal
(``views.open`` with the ``trigger_id`` of a button press) opens with the bot token of
the sink verified in the workspace the button was pressed in: one tenant's button never
opens a view with another tenant's token. slack-sdk's
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


class SlackInteractivity:
    def __init__(self, settings: Settings, verifier: _Verifications, clock: Clock) -> None:
        self._settings = settings
        self._verifier = verifier
        self._clock = clock

    @property
    def operator_tenant(self) -> str:
        return self._settings.operator_tenant

    async def _verified_in(self, team_id: str) -> list[Verification]:
        """The Slack sinks verified (and deliverable) in workspace ``team_id``."""
        now = self._clock.now()
        return [
            v
            for v in await self._verifier.verifications()
            if v.sink_type == "slack"
            and team_id
            and v.workspace == team_id
            and refusal(v, now) is None
        ]

    async def tenants_in(self, team_id: str) -> tuple[str, ...]:
        """The tenants whose verified Slack sinks are in workspace ``team_id``."""
        return tuple(sorted({v.tenant for v in await self._verified_in(team_id)}))

    async def _token_of(self, team_id: str) -> str | None:
        for verified in await self._verified_in(team_id):
            token = self._settings.sink_secrets.get(verified.sink_id)
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
