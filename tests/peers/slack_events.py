"""Slack's side of the Events API, for tests: it posts event callbacks to the app's
Request URL the way Slack does: the ``event_callback`` envelope (``event_id``,
``event_time``, ``team_id``, ``api_app_id``, ``authorizations``), signed with the app's
signing secret (``X-Slack-Signature`` v0, ``X-Slack-Request-Timestamp``), and, when it
believes a delivery failed, the same event again with ``X-Slack-Retry-Num`` and
``X-Slack-Retry-Reason``."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx

from eyetok import slack_events
from harness.peers.slack_workspace import TEAM_ID
from tests.verify import SLACK_SIGNING_SECRET

APP_ID = "A0EYETOK"
BOT_USER = "U0EYETOKBOT"


class SlackEventsSender:
    def __init__(self, url: str, *, secret: str = SLACK_SIGNING_SECRET) -> None:
        self.url = url
        self.secret = secret
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def envelope(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "verification-token-unused",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {"event_ts": event.get("ts", self.next_ts()), **event},
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def reply(
        self, text: str, *, thread_ts: str, channel: str, user: str = "U0DANA", **extra: Any
    ) -> dict[str, Any]:
        """A human's ``message`` in the thread ``thread_ts`` (``extra``: bot_id, subtype…)."""
        event = {"type": "message", "channel": channel, "channel_type": "channel", "user": user}
        return event | {"text": text, "ts": self.next_ts(), "thread_ts": thread_ts, **extra}

    def signed(
        self,
        envelope: dict[str, Any],
        *,
        retry: int = 0,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Slack sends ``envelope`` with (``retry``: its n-th retry)."""
        body = json.dumps(envelope).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "content-type": "application/json",
            "x-slack-request-timestamp": str(stamp),
            "x-slack-signature": signature or slack_events.sign(body, stamp, self.secret),
        }
        if retry:
            headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        return body, headers

    async def send(
        self, client: httpx.AsyncClient, envelope: dict[str, Any], **how: Any
    ) -> httpx.Response:
        body, headers = self.signed(envelope, **how)
        return await client.post(self.url, content=body, headers=headers)

    def send_sync(self, envelope: dict[str, Any], **how: Any) -> httpx.Response:
        body, headers = self.signed(envelope, **how)
        return httpx.post(self.url, content=body, headers=headers, timeout=15.0)
