"""The fake Slack's interactivity: what Slack POSTs to an app's Request URL when a person
presses a button or submits a modal (api.slack.com, "Handling user interaction",
"block_actions payloads", "view_submission payloads", "Verifying requests from Slack").

* the request is ``application/x-www-form-urlencoded`` with one field, ``payload``, the
  JSON of the interaction;
* ``X-Slack-Request-Timestamp`` (Unix seconds) and ``X-Slack-Signature``:
  ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the app's signing secret;
* a ``block_actions`` payload carries ``user`` (``id``, ``username``, ``name``,
  ``team_id``), ``team``, ``trigger_id`` (good for ``views.open`` within 3 seconds, once),
  ``container``, ``channel``, ``message`` and ``actions`` (``action_id``, ``block_id``,
  ``value``, ``type``, ``action_ts``);
* a ``view_submission`` payload carries ``user``, ``team``, ``trigger_id`` and ``view``
  (``id``, ``callback_id``, ``private_metadata``, ``state.values`` keyed by block id
  then action id). The app answers 200 with an empty body to close the modal, or
  ``{"response_action": "errors", "errors": {block_id: text}}`` to keep it open.

Standard library only, like every peer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["Interaction", "SlackPerson", "block_actions", "send", "view_submission"]

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class SlackPerson:
    """Who acts: a Slack user id (``U0DANA``), username and team."""

    id: str
    username: str
    team_id: str

    def user(self) -> JSONDict:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.username,
            "team_id": self.team_id,
        }


@dataclass(frozen=True)
class Interaction:
    """One interactivity request's answer from the app."""

    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text.strip() else None


def block_actions(
    person: SlackPerson,
    *,
    action_id: str,
    value: str,
    trigger_id: str,
    channel_id: str = "C0EYETOK",
    message_ts: str = "",
) -> JSONDict:
    """The payload of a button press on a message."""
    return {
        "type": "block_actions",
        "user": person.user(),
        "api_app_id": "A0EYETOK",
        "token": "deprecated-verification-token",
        "team": {"id": person.team_id, "domain": "fake"},
        "trigger_id": trigger_id,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "channel": {"id": channel_id, "name": "channel"},
        "message": {"type": "message", "ts": message_ts},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "eyetok",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(
    person: SlackPerson,
    view: JSONDict,
    values: dict[str, dict[str, str]],
    *,
    trigger_id: str = "",
) -> JSONDict:
    """The payload of a modal ``view`` (as opened) submitted with ``values``: block id
    -> action id -> the text typed into that plain-text input."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in inputs.items()
        }
        for block, inputs in values.items()
    }
    return {
        "type": "view_submission",
        "user": person.user(),
        "api_app_id": "A0EYETOK",
        "team": {"id": person.team_id, "domain": "fake"},
        "trigger_id": trigger_id,
        "view": {**view, "id": view.get("id", "V0EYETOK"), "state": {"values": state}},
    }


def signed(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(stamp).encode() + b":" + body
    signature = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": signature,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


def form(payload: JSONDict) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def send(
    url: str,
    payload: JSONDict,
    signing_secret: str,
    *,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> Interaction:
    """POST ``payload`` to the app's Request URL as Slack does; the app's answer."""
    body = form(payload)
    request = urllib.request.Request(
        url, data=body, method="POST", headers=signed(body, signing_secret, timestamp)
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Interaction(answer.status, answer.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as refused:
        return Interaction(refused.code, refused.read().decode("utf-8", "replace"))
