"""Who wrote in a thread, as Slack names them: ``users.info`` through slack-sdk.

The Events API sends a message's author as a user id only; a button press carries the
name too, so the audit says ``slack:<name> (<user id>)`` for both. The name is asked once
per user id with the bot token of the Slack sink whose thread it is, then kept (a renamed
user keeps the old name until a restart; the user id, which decisions compare, is always
there). When Slack cannot say (no token, not found, unreachable), the author is
``slack:<user id>`` and the next message asks again.
"""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from http.client import HTTPException
from typing import Any

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from eyetok import log
from eyetok.config import Settings

KEPT = 10_000  # names remembered (the oldest asked is forgotten first)


def by_of(user_id: str, name: str | None) -> str:
    """``slack:<name> (<user id>)`` (``slack:<user id>`` with no name), cut to 200."""
    return (f"slack:{name} ({user_id})" if name else f"slack:{user_id}")[:200]


class SlackNames:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._names: OrderedDict[str, str] = OrderedDict()
        self._limiter = trio.CapacityLimiter(1)
        self._log = log.get("conversation")

    async def by(self, sink_id: str, user_id: str) -> str:
        """The author of a message in sink ``sink_id``'s thread, for the audit."""
        name = self._names.get(user_id)
        if name is None and user_id:
            name = await self._ask(sink_id, user_id)
            if name is not None:
                self._names[user_id] = name
                while len(self._names) > KEPT:
                    self._names.popitem(last=False)
        return by_of(user_id, name)

    async def _ask(self, sink_id: str, user_id: str) -> str | None:
        token = self._settings.sink_secrets.get(sink_id)
        if not token:
            return None
        timeout: Any = self._settings.slack.request_timeout_s
        client = WebClient(
            token=token, base_url=self._settings.slack_api_url, timeout=timeout, retry_handlers=[]
        )

        def call() -> tuple[str | None, str | None]:
            try:
                user = client.users_info(user=user_id).get("user") or {}
            except SlackApiError as exc:
                data = exc.response.data
                error = data.get("error") if isinstance(data, dict) else None
                return None, f"Slack refused users.info: {error or exc.response.status_code}"
            except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as exc:
                return None, f"cannot reach Slack for users.info: {exc}"
            name = user.get("name") if isinstance(user, dict) else None
            return (str(name), None) if name else (None, "users.info named nobody")

        name, why = await trio.to_thread.run_sync(call, limiter=self._limiter)
        if why is not None:
            self._log.info("slack_user_not_named", user_id=user_id, sink=sink_id, why=why)
        return name
