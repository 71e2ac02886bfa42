"""The workspace inside the fake Slack: its identity, channels, the messages posted, the
members ``users.info`` knows, the trigger ids handed out and the views opened, and the
Web API methods that read and change them (``chat.*``, ``views.open``, ``auth.test``,
``users.info``, ``conversations.*``), as ``slack_sdk.WebClient`` calls them.

Not thread-safe by itself: :class:`~harness.peers.slack.FakeSlack` calls every method
with its lock held (the lock is handed in, to wake those waiting for a post).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.peers.slack_records import JSONDict, SlackPost

TEAM_ID = "T0FAKE000"
TEAM_NAME = "fake"
BOT_USER_ID = "U0EYETOK"
BOT_ID = "B0EYETOK"
APP_ID = "A0EYETOK"
TRIGGER_TTL_S = 3.0  # a trigger id opens a view within 3 seconds of the interaction
DEFAULT_CHANNELS: tuple[str, ...] = ("general", "alerts", "random")

_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{8,}$")


class BadRequest(Exception):
    """A request Slack refuses: answered ``{"ok": false, "error": error}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return None


def parse_json_field(value: Any, error: str) -> Any:
    """``blocks``/``attachments``/``metadata`` arrive as JSON strings in forms."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise BadRequest(error) from exc
    return value


def normalise_channel(value: Any) -> str:
    name = as_str(value) or ""
    return name.strip().removeprefix("#")


def _fake_channel_id(name: str) -> str:
    if _CHANNEL_ID_RE.match(name):
        return name
    return "C" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:10].upper()


class SlackWorkspace:
    """The one workspace this fake serves (its bot token's: :data:`TEAM_ID`)."""

    def __init__(self, cond: threading.Condition, channels: Sequence[str]) -> None:
        self._cond = cond  # the fake's lock: notified when a post or a view arrives
        self.posts: list[SlackPost] = []
        self.known_ts: set[tuple[str, str]] = set()  # (channel id, ts)
        self.channels: dict[str, str] = {}  # name -> id
        self.triggers: dict[str, float] = {}  # trigger id -> monotonic time it was issued
        self.views: list[JSONDict] = []  # views.open: the views opened, in order
        self.users: dict[str, str] = {}  # users.info: user id -> name (handle)
        self._last_ts_us = 0
        for name in channels:
            self.channel_id(normalise_channel(name))

    def channel_id(self, name: str) -> str:
        channel_id = self.channels.get(name)
        if channel_id is None:
            channel_id = _fake_channel_id(name)
            if not _CHANNEL_ID_RE.match(name):
                self.channels[name] = channel_id
        return channel_id

    def _next_ts(self) -> str:
        now_us = time.time_ns() // 1000
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        secs, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{secs}.{micros:06d}"

    def message(
        self,
        *,
        text: str | None,
        ts: str,
        blocks: list[Any] | None,
        thread_ts: str | None,
        metadata: Any,
    ) -> JSONDict:
        message: JSONDict = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": text or "",
            "ts": ts,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": "EyeTok",
                "team_id": TEAM_ID,
                "deleted": False,
            },
        }
        if blocks:
            message["blocks"] = blocks
        if thread_ts:
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = BOT_USER_ID
        if metadata:
            message["metadata"] = metadata
        return message

    def _message_fields(self, body: JSONDict) -> tuple[str, str | None, list[Any] | None, Any]:
        channel = normalise_channel(body.get("channel"))
        if not channel:
            raise BadRequest("channel_not_found")
        text = as_str(body.get("text"))
        blocks = parse_json_field(body.get("blocks"), "invalid_blocks_format")
        if blocks is not None and not isinstance(blocks, list):
            raise BadRequest("invalid_blocks_format")
        attachments = parse_json_field(body.get("attachments"), "invalid_attachments")
        metadata = parse_json_field(body.get("metadata"), "invalid_metadata_format")
        if not text and not blocks and not attachments:
            raise BadRequest("no_text")
        return channel, text, blocks or None, metadata

    def post_message(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        channel, text, blocks, metadata = self._message_fields(body)
        thread_ts = as_str(body.get("thread_ts")) or None
        channel_id = self.channel_id(channel)
        ts = self._next_ts()
        self.known_ts.add((channel_id, ts))
        self.posts.append(
            SlackPost(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                ts=ts,
                received_monotonic=arrived_monotonic,
                received_wall=arrived_wall,
                raw=body,
            )
        )
        self._cond.notify_all()
        message = self.message(
            text=text, ts=ts, blocks=blocks, thread_ts=thread_ts, metadata=metadata
        )
        return {"ok": True, "channel": channel_id, "ts": ts, "message": message}

    def update(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
        channel, text, blocks, metadata = self._message_fields(body)
        ts = as_str(body.get("ts"))
        if not ts:
            raise BadRequest("message_not_found")
        channel_id = self.channel_id(channel)
        if (channel_id, ts) not in self.known_ts:
            raise BadRequest("message_not_found")
        message = self.message(text=text, ts=ts, blocks=blocks, thread_ts=None, metadata=metadata)
        message.pop("ts")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": ts,
            "text": text or "",
            "message": message,
        }

    def views_open(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
        trigger = as_str(body.get("trigger_id"))
        issued = self.triggers.pop(trigger, None) if trigger else None
        if issued is None:
            raise BadRequest("invalid_trigger_id")
        if arrived_monotonic - issued > TRIGGER_TTL_S:
            raise BadRequest("expired_trigger_id")
        view = parse_json_field(body.get("view"), "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise BadRequest("invalid_arguments")
        opened = {**view, "id": f"V{len(self.views) + 1:08d}", "team_id": TEAM_ID}
        self.views.append(opened)
        self._cond.notify_all()
        return {"ok": True, "view": opened}

    def auth_test(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": TEAM_NAME,
            "user": "eyetok",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def users_info(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
        user_id = as_str(body.get("user"))
        name = self.users.get(user_id or "")
        if user_id is None or name is None:
            raise BadRequest("user_not_found")
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": name,
                "deleted": False,
                "real_name": name.title(),
                "is_bot": False,
                "profile": {"real_name": name.title(), "display_name": name},
            },
        }

    def conversations_list(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        channels = [
            {
                "id": channel_id,
                "name": name,
                "name_normalized": name,
                "is_channel": True,
                "is_group": False,
                "is_im": False,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
                "context_team_id": TEAM_ID,
                "num_members": 1,
            }
            for name, channel_id in sorted(self.channels.items())
        ]
        return {
            "ok": True,
            "channels": channels,
            "response_metadata": {"next_cursor": ""},
        }

    def get_permalink(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """``chat.getPermalink``: a link to a message this fake received."""
        channel = normalise_channel(body.get("channel"))
        ts = as_str(body.get("message_ts"))
        if not channel:
            raise BadRequest("channel_not_found")
        channel_id = self.channel_id(channel)
        if not ts or (channel_id, ts) not in self.known_ts:
            raise BadRequest("message_not_found")
        link = f"https://{TEAM_NAME}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel_id, "permalink": link}

    # -- conversations.history / conversations.replies (a post's metadata) ----

    def _history_messages(
        self, body: JSONDict, keep: Callable[[SlackPost], bool]
    ) -> list[JSONDict]:
        """The posts of ``body["channel"]`` that ``keep`` selects, within ``oldest`` and
        ``latest`` (exclusive, as Slack's default), newest first."""
        channel = normalise_channel(body.get("channel"))
        if not channel:
            raise BadRequest("channel_not_found")
        channel_id = self.channel_id(channel)
        oldest = float(as_str(body.get("oldest")) or "0")
        latest = float(as_str(body.get("latest")) or "inf")
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for post in reversed(self.posts):
            if self.channel_id(post.channel) != channel_id or not keep(post):
                continue
            if not oldest < float(post.ts) < latest:
                continue
            metadata = parse_json_field(post.raw.get("metadata"), "invalid_metadata_format")
            found.append(
                self.message(
                    text=post.text,
                    ts=post.ts,
                    blocks=post.blocks,
                    thread_ts=post.thread_ts,
                    metadata=metadata if with_metadata else None,
                )
            )
        return found

    @staticmethod
    def _page(messages: list[JSONDict], body: JSONDict) -> JSONDict:
        """One page of ``limit`` messages from ``cursor`` (an offset, opaque to clients)."""
        limit = max(1, min(int(as_str(body.get("limit")) or "100"), 1000))
        start = int(as_str(body.get("cursor")) or "0")
        more = len(messages) > start + limit
        return {
            "ok": True,
            "messages": messages[start : start + limit],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def conversations_history(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """Top-level messages (a thread's replies are not in the channel's history)."""
        messages = self._history_messages(body, lambda p: p.thread_ts in (None, p.ts))
        return self._page(messages, body)

    def conversations_replies(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """A thread: its parent and replies, oldest first."""
        parent = as_str(body.get("ts"))
        if not parent:
            raise BadRequest("thread_not_found")
        messages = self._history_messages(body, lambda p: parent in (p.ts, p.thread_ts))
        if not any(m["ts"] == parent for m in messages) and float(parent) > float(
            as_str(body.get("oldest")) or "0"
        ):
            raise BadRequest("thread_not_found")
        return self._page(list(reversed(messages)), body)


Method = Callable[[SlackWorkspace, JSONDict, float, float], JSONDict]
METHODS: dict[str, Method] = {
    "chat.postMessage": SlackWorkspace.post_message,
    "chat.update": SlackWorkspace.update,
    "chat.getPermalink": SlackWorkspace.get_permalink,
    "views.open": SlackWorkspace.views_open,
    "auth.test": SlackWorkspace.auth_test,
    "users.info": SlackWorkspace.users_info,
    "conversations.list": SlackWorkspace.conversations_list,
    "conversations.history": SlackWorkspace.conversations_history,
    "conversations.replies": SlackWorkspace.conversations_replies,
}
