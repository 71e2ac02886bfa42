"""A local fake of the Slack Web API that the real ``slack_sdk`` client can talk to.

Standard library only: a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, so
it works from plain pytest, from trio tests (call it from worker threads) and as a
separate process (``python -m harness.peers.slack --port 0``).

Wire format, as Slack and ``slack_sdk.WebClient`` speak it:

* every method is ``POST {base_url}{method}`` (e.g. ``/api/chat.postMessage``);
  GET with query parameters is accepted too, as Slack does;
* the body is JSON (``Content-Type: application/json;charset=utf-8``; WebClient
  uses this for ``chat.postMessage``/``chat.update``) or form-urlencoded (WebClient
  uses this for most other methods), query parameters are merged in;
* the token comes in ``Authorization: Bearer xoxb-...`` (or, form bodies only, a
  ``token`` parameter);
* answers are HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``;
  rate limiting is HTTP 429 with a ``Retry-After`` header and
  ``{"ok": false, "error": "ratelimited"}``;
* ``views.open`` takes a ``trigger_id`` this fake issued (``issue_trigger_id()``, as
  Slack puts one in each interaction payload) once, within 3 seconds
  (``invalid_trigger_id`` / ``expired_trigger_id`` otherwise), and a modal ``view``;
  the interaction requests themselves are ``harness/peers/slack_interactivity.py``.

Test-control endpoints (in-process and subprocess alike), JSON in and out:

* ``GET  /_fake/posts[?since=N]`` - posts received (``since`` skips the first N);
* ``GET  /_fake/calls`` - every API request, with the status answered;
* ``POST /_fake/script`` - ``{"responses": [{"status": 429, "retry_after": 3},
  {"status": 200, "error": "channel_not_found"}, {"status": 500}]}`` (or a bare
  list) queues answers for the next ``chat.postMessage`` calls;
* ``POST /_fake/delay`` - ``{"seconds": 0.5}`` sets the answer delay;
* ``POST /_fake/slow_posts`` - ``{"seconds": 12, "for_s": 25}``: for ``for_s`` seconds
  (omitted: until reset) every ``chat.postMessage`` is posted at once but answered only
  after ``seconds`` (a client with a shorter timeout gives up on a post that landed);
* ``POST /_fake/reset`` - forgets posts, calls, scripts and the delay.

``chat.getPermalink`` links a message it received. ``conversations.history`` and
``conversations.replies`` answer from the posts received
(newest first, as Slack does; ``oldest``/``latest``/``limit``), with each message's
``metadata`` only when ``include_all_metadata`` is true, as Slack does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler, serve_until_signalled

__all__ = ["FakeSlack", "RawCall", "Scripted", "SlackPost", "main"]

JSONDict = dict[str, Any]

TEAM_ID = "T0FAKE000"
TEAM_NAME = "fake"
BOT_USER_ID = "U0EYETOK"
BOT_ID = "B0EYETOK"
APP_ID = "A0EYETOK"
TRIGGER_TTL_S = 3.0  # a trigger id opens a view within 3 seconds of the interaction
DEFAULT_CHANNELS: tuple[str, ...] = ("general", "alerts", "random")

_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_MAX_BODY = 16 * 1024 * 1024


# ---------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class SlackPost:
    """One successful ``chat.postMessage`` call."""

    channel: str  # as given by the caller, without a leading '#'
    text: str | None
    blocks: list[Any] | None = field(hash=False)
    thread_ts: str | None
    ts: str  # the ts the fake answered
    received_monotonic: float  # time.monotonic() on arrival
    received_wall: float  # time.time() on arrival
    raw: JSONDict = field(hash=False, repr=False)  # the parsed request body

    def to_json(self) -> JSONDict:
        return {
            "channel": self.channel,
            "ts": self.ts,
            "thread_ts": self.thread_ts,
            "text": self.text,
            "blocks": self.blocks,
            "received_wall": self.received_wall,
        }


@dataclass(frozen=True)
class RawCall:
    """Any request to the fake outside ``/_fake/``, including failed ones."""

    method: str  # Slack method ("chat.postMessage"), or the path if not under /api/
    http_method: str  # "POST" / "GET"
    headers: dict[str, str] = field(hash=False)  # lower-cased header names
    body: JSONDict = field(hash=False)  # parsed body (query parameters merged in)
    status: int  # HTTP status answered
    error: str | None  # the "error" answered, None when ok
    at: float  # time.monotonic() on arrival

    def to_json(self) -> JSONDict:
        headers = {
            k: ("(redacted)" if k == "authorization" else v) for k, v in self.headers.items()
        }
        return {
            "method": self.method,
            "http_method": self.http_method,
            "headers": headers,
            "body": self.body,
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


@dataclass(frozen=True)
class Scripted:
    """A scripted answer for one upcoming ``chat.postMessage`` call.

    * ``status == 200`` and ``error`` set: ``{"ok": false, "error": error}``;
    * ``status == 200`` and no error: handled normally (see ``passthrough``);
    * ``status == 429``: ``{"ok": false, "error": "ratelimited"}`` with
      ``Retry-After: retry_after`` when given;
    * anything else: that status with ``{"ok": false, "error": error or
      "internal_error"}``.

    A scripted failure is not recorded as a post (it is in ``calls``).
    """

    status: int = 200
    retry_after: int | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"bad HTTP status {self.status}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")

    @classmethod
    def server_error(cls, status: int = 500) -> Scripted:
        return cls(status=status)

    @classmethod
    def rate_limited(cls, seconds: int = 1) -> Scripted:
        return cls(status=429, retry_after=seconds)

    @classmethod
    def slack_error(cls, error: str) -> Scripted:
        return cls(status=200, error=error)

    @classmethod
    def passthrough(cls) -> Scripted:
        """Answer this call normally (to interleave successes in a script)."""
        return cls(status=200)

    @property
    def is_passthrough(self) -> bool:
        return self.status == 200 and self.error is None

    def answer(self) -> tuple[int, JSONDict, dict[str, str]]:
        default = "ratelimited" if self.status == 429 else "internal_error"
        headers: dict[str, str] = {}
        if self.retry_after is not None and self.status != 200:
            headers["Retry-After"] = str(self.retry_after)
        return self.status, {"ok": False, "error": self.error or default}, headers

    def to_json(self) -> JSONDict:
        return {
            "status": self.status,
            "retry_after": self.retry_after,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Any) -> Scripted:
        if not isinstance(data, dict):
            raise ValueError("a scripted answer must be a JSON object")
        unknown = set(data) - {"status", "retry_after", "error"}
        if unknown:
            raise ValueError(f"unknown keys in scripted answer: {sorted(unknown)}")
        status = data.get("status", 200)
        retry_after = data.get("retry_after")
        error = data.get("error")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("status must be an integer")
        if retry_after is not None and (
            not isinstance(retry_after, int) or isinstance(retry_after, bool)
        ):
            raise ValueError("retry_after must be an integer or null")
        if error is not None and not isinstance(error, str):
            raise ValueError("error must be a string or null")
        return cls(status=status, retry_after=retry_after, error=error)


# ---------------------------------------------------------------------------
# request parsing helpers


class _BadRequest(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _parse_body(content_type: str, data: bytes, query: str) -> JSONDict:
    params: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
    if not data:
        return params
    if content_type == "application/json":
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _BadRequest("invalid_json") from exc
        if not isinstance(parsed, dict):
            raise _BadRequest("json_not_object")
        params.update(parsed)
        return params
    if content_type in ("application/x-www-form-urlencoded", "text/plain", ""):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadRequest("invalid_form_data") from exc
        params.update(parse_qsl(text, keep_blank_values=True))
        return params
    raise _BadRequest("invalid_form_data")


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return None


def _parse_json_field(value: Any, error: str) -> Any:
    """``blocks``/``attachments``/``metadata`` arrive as JSON strings in forms."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _BadRequest(error) from exc
    return value


def _normalise_channel(value: Any) -> str:
    name = _as_str(value) or ""
    return name.strip().removeprefix("#")


def _fake_channel_id(name: str) -> str:
    if _CHANNEL_ID_RE.match(name):
        return name
    return "C" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:10].upper()


# ---------------------------------------------------------------------------
# HTTP plumbing


class _Handler(PeerHTTPHandler):
    server_version = "FakeSlack/1.0"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are dropped after this
    json_type = "application/json; charset=utf-8"
    say_close = True

    @property
    def _fake(self) -> FakeSlack:
        fake = self.peer
        assert isinstance(fake, FakeSlack)
        return fake

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            raise _BadRequest("invalid_content_length")
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        arrived_monotonic = time.monotonic()
        arrived_wall = time.time()
        fake = self._fake
        url = urlsplit(self.path)
        try:
            data = self._read_body()
        except _BadRequest as exc:
            self._send_json(400, {"ok": False, "error": exc.error}, {})
            return
        if url.path.startswith("/_fake/"):
            status, payload = fake._control(
                self.command, url.path[len("/_fake/") :], url.query, data
            )
            self._send_json(status, payload, {})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra, delay = fake._api(
            http_method=self.command,
            path=url.path,
            query=url.query,
            headers=headers,
            content_type=self.headers.get_content_type() if "content-type" in headers else "",
            data=data,
            arrived_monotonic=arrived_monotonic,
            arrived_wall=arrived_wall,
        )
        if delay > 0:
            time.sleep(delay)
        self._send_json(status, payload, extra)


# ---------------------------------------------------------------------------
# the fake


class FakeSlack(HttpPeer):
    """A fake Slack Web API on 127.0.0.1. Thread-safe.

    ``posts`` records successful ``chat.postMessage`` calls in arrival order;
    ``calls`` records every request outside ``/_fake/``.  A post is recorded (and
    its ``ts`` assigned) when the request arrives; ``delay`` then holds back the
    *answer*, as a slow Slack that has already posted the message would.
    """

    label = "FakeSlack"
    thread_name = "fake-slack-{port}"
    handler = _Handler
    backlog = 128

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        host: str = "127.0.0.1",
        port: int = 0,
        channels: Sequence[str] = DEFAULT_CHANNELS,
    ) -> None:
        super().__init__(host=host, port=port)
        self.token = token
        self._posts: list[SlackPost] = []
        self._calls: list[RawCall] = []
        self._script: deque[Scripted] = deque()
        self._down_channels: dict[str, Scripted] = {}
        self._delay = 0.0
        self._slow_posts: tuple[float, float] | None = None  # (answer after s, until monotonic)
        self._last_ts_us = 0
        self._known_ts: set[tuple[str, str]] = set()  # (channel id, ts)
        self._channels: dict[str, str] = {}  # name -> id
        self._workspaces: dict[str, str] = {}  # other accepted bot tokens -> their team id
        self._triggers: dict[str, float] = {}  # trigger id -> monotonic time it was issued
        self._views: list[JSONDict] = []  # views.open: the views opened, in order
        self._users: dict[str, str] = {}  # users.info: user id -> name (handle)
        for name in channels:
            self._channel_id(_normalise_channel(name))

    # -- where it is ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/`` (ends with '/', as WebClient needs)."""
        return f"http://{self._host}:{self.port}/api/"

    # -- inspection -----------------------------------------------------------

    @property
    def posts(self) -> list[SlackPost]:
        with self._cond:
            return list(self._posts)

    @property
    def calls(self) -> list[RawCall]:
        with self._cond:
            return list(self._calls)

    def wait_for_posts(self, n: int, timeout: float = 10.0) -> list[SlackPost]:
        """Block until at least ``n`` posts arrived; return them all."""
        with self._cond:
            self._wait(lambda: len(self._posts) >= n, timeout, f"{n} post(s)")
            return list(self._posts)

    def wait_for_calls(
        self, n: int, timeout: float = 10.0, *, method: str | None = None
    ) -> list[RawCall]:
        """Block until at least ``n`` requests (of ``method``, if given) arrived."""

        def done() -> bool:
            return len(self._matching_calls(method)) >= n

        what = f"{n} call(s)" + (f" of {method}" if method else "")
        with self._cond:
            self._wait(done, timeout, what)
            return self._matching_calls(method)

    def _matching_calls(self, method: str | None) -> list[RawCall]:
        return [c for c in self._calls if method is None or c.method == method]

    def _seen(self) -> str:
        posts = [(p.channel, p.text, p.thread_ts) for p in self._posts]
        calls = [(c.method, c.status, c.error) for c in self._calls]
        return f"{len(posts)} post(s) arrived: {posts!r}; {len(calls)} call(s): {calls!r}"

    def add_workspace(self, token: str, team_id: str) -> None:
        """Accept ``token`` too, as a bot token of workspace ``team_id`` (what
        ``auth.test`` answers for it; ``token`` itself is in :data:`TEAM_ID`)."""
        with self._cond:
            self._workspaces[token] = team_id

    def add_user(self, user_id: str, name: str) -> None:
        """A member ``users.info`` knows (any other user id: ``user_not_found``)."""
        with self._cond:
            self._users[user_id] = name

    # -- scripting ------------------------------------------------------------

    def fail_next(self, *responses: Scripted) -> None:
        """Queue scripted answers for the next ``chat.postMessage`` calls."""
        with self._cond:
            self._script.extend(responses)

    def take_down(self, channel: str, answer: Scripted | None = None) -> None:
        """Every chat.postMessage to ``channel`` gets ``answer`` (default: HTTP 503)
        until :meth:`bring_up`; other channels are unaffected."""
        with self._cond:
            self._down_channels[_normalise_channel(channel)] = answer or Scripted.server_error(503)

    def bring_up(self, channel: str) -> None:
        with self._cond:
            self._down_channels.pop(_normalise_channel(channel), None)

    @property
    def pending_script(self) -> list[Scripted]:
        with self._cond:
            return list(self._script)

    @property
    def delay(self) -> float:
        """Seconds slept before answering each API call; settable at any time."""
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._delay = float(seconds)

    def reset(self) -> None:
        """Forget posts, calls, pending scripted answers and the delay."""
        with self._cond:
            self._posts.clear()
            self._calls.clear()
            self._script.clear()
            self._known_ts.clear()
            self._delay = 0.0
            self._slow_posts = None
            self._cond.notify_all()

    def slow_posts(self, seconds: float, *, for_s: float | None = None) -> None:
        """For ``for_s`` seconds (None: until :meth:`reset`), post every
        ``chat.postMessage`` at once but answer it only after ``seconds``: the message
        landed, the client may have given up waiting."""
        if seconds < 0 or (for_s is not None and for_s < 0):
            raise ValueError("seconds and for_s must be >= 0")
        until = float("inf") if for_s is None else time.monotonic() + for_s
        with self._cond:
            self._slow_posts = (float(seconds), until)

    def _answer_delay(self, method: str, arrived_monotonic: float) -> float:
        slow = self._slow_posts
        if method == "chat.postMessage" and slow is not None and arrived_monotonic < slow[1]:
            return max(self._delay, slow[0])
        return self._delay

    # -- internals (called from handler threads) ------------------------------

    def _channel_id(self, name: str) -> str:
        channel_id = self._channels.get(name)
        if channel_id is None:
            channel_id = _fake_channel_id(name)
            if not _CHANNEL_ID_RE.match(name):
                self._channels[name] = channel_id
        return channel_id

    def _next_ts(self) -> str:
        now_us = time.time_ns() // 1000
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        secs, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{secs}.{micros:06d}"

    def _api(
        self,
        *,
        http_method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        content_type: str,
        data: bytes,
        arrived_monotonic: float,
        arrived_wall: float,
    ) -> tuple[int, JSONDict, dict[str, str], float]:
        body: JSONDict = {}
        extra: dict[str, str] = {}
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            try:
                body = _parse_body(content_type, data, query)
            except _BadRequest as exc:
                status, payload = 200, {"ok": False, "error": exc.error}
            else:
                with self._cond:
                    status, payload, extra = self._handle_locked(
                        method, headers, body, arrived_monotonic, arrived_wall
                    )
        elif path.startswith("/actions/") and http_method == "POST":
            # an interaction's response_url (Slack serves it on hooks.slack.com): a JSON
            # message, shown to the person who pressed the button when ephemeral
            method = path
            try:
                body = _parse_body(content_type, data, query)
            except _BadRequest as exc:
                status, payload = 400, {"ok": False, "error": exc.error}
            else:
                status, payload = 200, {"ok": True}
        else:
            method = path
            status, payload = 404, {"ok": False, "error": "not_found"}
        delay = self._answer_delay(method, arrived_monotonic)
        error = None if payload.get("ok") else str(payload.get("error"))
        call = RawCall(
            method=method,
            http_method=http_method,
            headers=headers,
            body=body,
            status=status,
            error=error,
            at=arrived_monotonic,
        )
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return status, payload, extra, delay

    def _auth_error(self, headers: dict[str, str], body: JSONDict) -> str | None:
        auth = headers.get("authorization", "").strip()
        token: str | None = None
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return "invalid_auth"
            token = value.strip()
        else:
            token = _as_str(body.get("token"))
        if not token:
            return "not_authed"
        if token != self.token and token not in self._workspaces:
            return "invalid_auth"
        return None

    def _team_of_caller(self, headers: dict[str, str], body: JSONDict) -> str:
        _, _, value = headers.get("authorization", "").strip().partition(" ")
        token = value.strip() or _as_str(body.get("token")) or ""
        return self._workspaces.get(token, TEAM_ID)

    def _handle_locked(
        self,
        method: str,
        headers: dict[str, str],
        body: JSONDict,
        arrived_monotonic: float,
        arrived_wall: float,
    ) -> tuple[int, JSONDict, dict[str, str]]:
        if method == "chat.postMessage":
            down = self._down_channels.get(_normalise_channel(body.get("channel")))
            if down is not None:
                return down.answer()
        if method == "chat.postMessage" and self._script:
            scripted = self._script.popleft()
            if not scripted.is_passthrough:
                return scripted.answer()
        handler = _METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        auth_error = self._auth_error(headers, body)
        if auth_error is not None:
            return 200, {"ok": False, "error": auth_error}, {}
        try:
            payload = handler(self, body, arrived_monotonic, arrived_wall)
        except _BadRequest as exc:
            payload = {"ok": False, "error": exc.error}
        if method == "auth.test" and payload.get("ok"):
            payload["team_id"] = self._team_of_caller(headers, body)
        return 200, payload, {}

    def _message(
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
        channel = _normalise_channel(body.get("channel"))
        if not channel:
            raise _BadRequest("channel_not_found")
        text = _as_str(body.get("text"))
        blocks = _parse_json_field(body.get("blocks"), "invalid_blocks_format")
        if blocks is not None and not isinstance(blocks, list):
            raise _BadRequest("invalid_blocks_format")
        attachments = _parse_json_field(body.get("attachments"), "invalid_attachments")
        metadata = _parse_json_field(body.get("metadata"), "invalid_metadata_format")
        if not text and not blocks and not attachments:
            raise _BadRequest("no_text")
        return channel, text, blocks or None, metadata

    def _post_message(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        channel, text, blocks, metadata = self._message_fields(body)
        thread_ts = _as_str(body.get("thread_ts")) or None
        channel_id = self._channel_id(channel)
        ts = self._next_ts()
        self._known_ts.add((channel_id, ts))
        self._posts.append(
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
        message = self._message(
            text=text, ts=ts, blocks=blocks, thread_ts=thread_ts, metadata=metadata
        )
        return {"ok": True, "channel": channel_id, "ts": ts, "message": message}

    def _update(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
        channel, text, blocks, metadata = self._message_fields(body)
        ts = _as_str(body.get("ts"))
        if not ts:
            raise _BadRequest("message_not_found")
        channel_id = self._channel_id(channel)
        if (channel_id, ts) not in self._known_ts:
            raise _BadRequest("message_not_found")
        message = self._message(text=text, ts=ts, blocks=blocks, thread_ts=None, metadata=metadata)
        message.pop("ts")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": ts,
            "text": text or "",
            "message": message,
        }

    def issue_trigger_id(self) -> str:
        """A trigger id, as Slack puts in an interaction payload: ``views.open`` takes it
        once, within :data:`TRIGGER_TTL_S`."""
        with self._cond:
            trigger = f"{len(self._triggers) + 1}.{uuid.uuid4().hex[:12]}"
            self._triggers[trigger] = time.monotonic()
            return trigger

    @property
    def views(self) -> list[JSONDict]:
        """Every view opened with ``views.open`` (as sent), oldest first."""
        with self._cond:
            return list(self._views)

    def _views_open(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        trigger = _as_str(body.get("trigger_id"))
        issued = self._triggers.pop(trigger, None) if trigger else None
        if issued is None:
            raise _BadRequest("invalid_trigger_id")
        if arrived_monotonic - issued > TRIGGER_TTL_S:
            raise _BadRequest("expired_trigger_id")
        view = _parse_json_field(body.get("view"), "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise _BadRequest("invalid_arguments")
        opened = {**view, "id": f"V{len(self._views) + 1:08d}", "team_id": TEAM_ID}
        self._views.append(opened)
        self._cond.notify_all()
        return {"ok": True, "view": opened}

    def _auth_test(self, body: JSONDict, arrived_monotonic: float, arrived_wall: float) -> JSONDict:
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

    def _users_info(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        user_id = _as_str(body.get("user"))
        name = self._users.get(user_id or "")
        if user_id is None or name is None:
            raise _BadRequest("user_not_found")
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

    def _conversations_list(
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
            for name, channel_id in sorted(self._channels.items())
        ]
        return {
            "ok": True,
            "channels": channels,
            "response_metadata": {"next_cursor": ""},
        }

    def _get_permalink(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """``chat.getPermalink``: a link to a message this fake received."""
        channel = _normalise_channel(body.get("channel"))
        ts = _as_str(body.get("message_ts"))
        if not channel:
            raise _BadRequest("channel_not_found")
        channel_id = self._channel_id(channel)
        if not ts or (channel_id, ts) not in self._known_ts:
            raise _BadRequest("message_not_found")
        link = f"https://{TEAM_NAME}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel_id, "permalink": link}

    # -- conversations.history / conversations.replies (a post's metadata) ----

    def _history_messages(
        self, body: JSONDict, keep: Callable[[SlackPost], bool]
    ) -> list[JSONDict]:
        """The posts of ``body["channel"]`` that ``keep`` selects, within ``oldest`` and
        ``latest`` (exclusive, as Slack's default), newest first."""
        channel = _normalise_channel(body.get("channel"))
        if not channel:
            raise _BadRequest("channel_not_found")
        channel_id = self._channel_id(channel)
        oldest = float(_as_str(body.get("oldest")) or "0")
        latest = float(_as_str(body.get("latest")) or "inf")
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for post in reversed(self._posts):
            if self._channel_id(post.channel) != channel_id or not keep(post):
                continue
            if not oldest < float(post.ts) < latest:
                continue
            metadata = _parse_json_field(post.raw.get("metadata"), "invalid_metadata_format")
            found.append(
                self._message(
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
        limit = max(1, min(int(_as_str(body.get("limit")) or "100"), 1000))
        start = int(_as_str(body.get("cursor")) or "0")
        more = len(messages) > start + limit
        return {
            "ok": True,
            "messages": messages[start : start + limit],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_history(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """Top-level messages (a thread's replies are not in the channel's history)."""
        messages = self._history_messages(body, lambda p: p.thread_ts in (None, p.ts))
        return self._page(messages, body)

    def _conversations_replies(
        self, body: JSONDict, arrived_monotonic: float, arrived_wall: float
    ) -> JSONDict:
        """A thread: its parent and replies, oldest first."""
        parent = _as_str(body.get("ts"))
        if not parent:
            raise _BadRequest("thread_not_found")
        messages = self._history_messages(body, lambda p: parent in (p.ts, p.thread_ts))
        if not any(m["ts"] == parent for m in messages) and float(parent) > float(
            _as_str(body.get("oldest")) or "0"
        ):
            raise _BadRequest("thread_not_found")
        return self._page(list(reversed(messages)), body)

    # -- /_fake/ control endpoints ------------------------------------------

    def _control(self, http_method: str, name: str, query: str, data: bytes) -> tuple[int, Any]:
        params = dict(parse_qsl(query))
        try:
            payload: Any = json.loads(data) if data.strip() else {}
        except ValueError:
            return 400, {"ok": False, "error": "invalid_json"}
        try:
            if http_method == "GET" and name == "posts":
                since = int(params.get("since", "0"))
                return 200, [p.to_json() for p in self.posts[since:]]
            if http_method == "GET" and name == "calls":
                return 200, [c.to_json() for c in self.calls]
            if http_method == "POST" and name == "script":
                items = payload.get("responses") if isinstance(payload, dict) else payload
                if not isinstance(items, list):
                    raise ValueError("expected {'responses': [...]} or a list")
                self.fail_next(*(Scripted.from_json(item) for item in items))
                return 200, {"ok": True, "pending": len(self.pending_script)}
            if http_method == "POST" and name == "delay":
                seconds = payload.get("seconds") if isinstance(payload, dict) else None
                if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                    raise ValueError("expected {'seconds': <number>}")
                self.delay = float(seconds)
                return 200, {"ok": True, "delay": self.delay}
            if http_method == "POST" and name == "slow_posts":
                seconds = payload.get("seconds") if isinstance(payload, dict) else None
                for_s = payload.get("for_s") if isinstance(payload, dict) else None
                if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                    raise ValueError("expected {'seconds': <number>, 'for_s': <number>}")
                if for_s is not None and not isinstance(for_s, int | float):
                    raise ValueError("for_s must be a number or null")
                self.slow_posts(float(seconds), for_s=None if for_s is None else float(for_s))
                return 200, {"ok": True}
            if http_method == "POST" and name == "reset":
                self.reset()
                return 200, {"ok": True}
        except ValueError as exc:
            return 400, {"ok": False, "error": "bad_request", "detail": str(exc)}
        return 404, {"ok": False, "error": "not_found"}


_Method = Callable[[FakeSlack, JSONDict, float, float], JSONDict]
_METHODS: dict[str, _Method] = {
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.getPermalink": FakeSlack._get_permalink,
    "views.open": FakeSlack._views_open,
    "auth.test": FakeSlack._auth_test,
    "users.info": FakeSlack._users_info,
    "conversations.list": FakeSlack._conversations_list,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
}


# ---------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.peers.slack",
        description="Serve a fake Slack Web API until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--token", default="xoxb-test", help="expected bot token")
    parser.add_argument("--delay", type=float, default=0.0, help="answer delay (s)")
    args = parser.parse_args(argv)

    fake = FakeSlack(token=args.token, host=args.host, port=args.port)
    fake.delay = args.delay
    return serve_until_signalled(
        fake, lambda: {"base_url": fake.base_url, "port": fake.port, "token": fake.token}
    )


if __name__ == "__main__":
    raise SystemExit(main())
