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

This module is the server: its HTTP plumbing, the scripting and the test controls.
The workspace it serves and its Web API methods are ``slack_workspace.py``; the records
it keeps and the scripted answers are ``slack_records.py``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler, serve_until_signalled
from harness.peers.slack_records import JSONDict, RawCall, Scripted, SlackPost
from harness.peers.slack_workspace import (
    DEFAULT_CHANNELS,
    METHODS,
    TEAM_ID,
    BadRequest,
    SlackWorkspace,
    as_str,
    normalise_channel,
)

_MAX_BODY = 16 * 1024 * 1024


def _parse_body(content_type: str, data: bytes, query: str) -> JSONDict:
    params: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
    if not data:
        return params
    if content_type == "application/json":
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("invalid_json") from exc
        if not isinstance(parsed, dict):
            raise BadRequest("json_not_object")
        params.update(parsed)
        return params
    if content_type in ("application/x-www-form-urlencoded", "text/plain", ""):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("invalid_form_data") from exc
        params.update(parse_qsl(text, keep_blank_values=True))
        return params
    raise BadRequest("invalid_form_data")


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
            raise BadRequest("invalid_content_length")
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        arrived_monotonic = time.monotonic()
        arrived_wall = time.time()
        fake = self._fake
        url = urlsplit(self.path)
        try:
            data = self._read_body()
        except BadRequest as exc:
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
        self._calls: list[RawCall] = []
        self._script: deque[Scripted] = deque()
        self._down_channels: dict[str, Scripted] = {}
        self._delay = 0.0
        self._slow_posts: tuple[float, float] | None = None  # (answer after s, until monotonic)
        self._token_teams: dict[str, str] = {}  # other accepted bot tokens -> their team id
        self._workspace = SlackWorkspace(self._cond, channels)

    # -- where it is ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/`` (ends with '/', as WebClient needs)."""
        return f"http://{self._host}:{self.port}/api/"

    # -- inspection -----------------------------------------------------------

    @property
    def posts(self) -> list[SlackPost]:
        with self._cond:
            return list(self._workspace.posts)

    @property
    def calls(self) -> list[RawCall]:
        with self._cond:
            return list(self._calls)

    def wait_for_posts(self, n: int, timeout: float = 10.0) -> list[SlackPost]:
        """Block until at least ``n`` posts arrived; return them all."""
        with self._cond:
            self._wait(lambda: len(self._workspace.posts) >= n, timeout, f"{n} post(s)")
            return list(self._workspace.posts)

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
        posts = [(p.channel, p.text, p.thread_ts) for p in self._workspace.posts]
        calls = [(c.method, c.status, c.error) for c in self._calls]
        return f"{len(posts)} post(s) arrived: {posts!r}; {len(calls)} call(s): {calls!r}"

    def add_workspace(self, token: str, team_id: str) -> None:
        """Accept ``token`` too, as a bot token of workspace ``team_id`` (what
        ``auth.test`` answers for it; ``token`` itself is in :data:`TEAM_ID`)."""
        with self._cond:
            self._token_teams[token] = team_id

    def add_user(self, user_id: str, name: str) -> None:
        """A member ``users.info`` knows (any other user id: ``user_not_found``)."""
        with self._cond:
            self._workspace.users[user_id] = name

    # -- scripting ------------------------------------------------------------

    def fail_next(self, *responses: Scripted) -> None:
        """Queue scripted answers for the next ``chat.postMessage`` calls."""
        with self._cond:
            self._script.extend(responses)

    def take_down(self, channel: str, answer: Scripted | None = None) -> None:
        """Every chat.postMessage to ``channel`` gets ``answer`` (default: HTTP 503)
        until :meth:`bring_up`; other channels are unaffected."""
        with self._cond:
            self._down_channels[normalise_channel(channel)] = answer or Scripted.server_error(503)

    def bring_up(self, channel: str) -> None:
        with self._cond:
            self._down_channels.pop(normalise_channel(channel), None)

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
            self._workspace.posts.clear()
            self._calls.clear()
            self._script.clear()
            self._workspace.known_ts.clear()
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
            except BadRequest as exc:
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
            except BadRequest as exc:
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
            token = as_str(body.get("token"))
        if not token:
            return "not_authed"
        if token != self.token and token not in self._token_teams:
            return "invalid_auth"
        return None

    def _team_of_caller(self, headers: dict[str, str], body: JSONDict) -> str:
        _, _, value = headers.get("authorization", "").strip().partition(" ")
        token = value.strip() or as_str(body.get("token")) or ""
        return self._token_teams.get(token, TEAM_ID)

    def _handle_locked(
        self,
        method: str,
        headers: dict[str, str],
        body: JSONDict,
        arrived_monotonic: float,
        arrived_wall: float,
    ) -> tuple[int, JSONDict, dict[str, str]]:
        if method == "chat.postMessage":
            down = self._down_channels.get(normalise_channel(body.get("channel")))
            if down is not None:
                return down.answer()
        if method == "chat.postMessage" and self._script:
            scripted = self._script.popleft()
            if not scripted.is_passthrough:
                return scripted.answer()
        handler = METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        auth_error = self._auth_error(headers, body)
        if auth_error is not None:
            return 200, {"ok": False, "error": auth_error}, {}
        try:
            payload = handler(self._workspace, body, arrived_monotonic, arrived_wall)
        except BadRequest as exc:
            payload = {"ok": False, "error": exc.error}
        if method == "auth.test" and payload.get("ok"):
            payload["team_id"] = self._team_of_caller(headers, body)
        return 200, payload, {}

    def issue_trigger_id(self) -> str:
        """A trigger id, as Slack puts in an interaction payload: ``views.open`` takes it
        once, within :data:`TRIGGER_TTL_S`."""
        with self._cond:
            trigger = f"{len(self._workspace.triggers) + 1}.{uuid.uuid4().hex[:12]}"
            self._workspace.triggers[trigger] = time.monotonic()
            return trigger

    @property
    def views(self) -> list[JSONDict]:
        """Every view opened with ``views.open`` (as sent), oldest first."""
        with self._cond:
            return list(self._workspace.views)

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
