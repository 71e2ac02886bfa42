"""A local fake of PagerDuty's Events API v2 that validates events as PagerDuty does.

Standard library only: a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, so it
works from plain pytest, from trio tests (httpx talks to it over a real socket) and as a
separate process (``python -m harness.peers.pagerduty --port 0``).

Wire format (developer.pagerduty.com, "Send an Alert Event" and "Events API v2 Overview"):

* ``POST /v2/enqueue`` with a JSON object: ``routing_key`` (the integration key),
  ``event_action`` (``trigger`` | ``acknowledge`` | ``resolve``), ``dedup_key`` (at most
  255 characters; optional on a trigger, which then gets a generated one), and for a
  trigger a ``payload`` with ``summary`` (at most 1,024 characters), ``source`` and
  ``severity`` (``critical`` | ``error`` | ``warning`` | ``info``); optional
  ``timestamp``, ``component``, ``group``, ``class``, ``custom_details``, ``links``,
  ``images``, ``client``, ``client_url``. Bodies are limited to 512 KB.
* ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}``;
  ``400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``;
  ``429`` when throttled; ``5xx`` on trouble.
* Alerts: a trigger opens an alert for its dedup key (or folds into the open one); an
  acknowledge or a resolve applies to the open alert only if it comes through the same
  routing key, and is dropped (still ``202``) when there is none. A trigger after a resolve
  opens a new alert. An acknowledged alert stays acknowledged through new triggers.

The fake accepts any non-empty routing key unless one is configured (then a different key
is refused); ``strict_key_length=True`` also refuses keys that are not 32 characters.

The way back (PagerDuty's v3 webhooks, ``harness/peers/pagerduty_webhooks.py``):
``subscribe(url, secret)`` then ``act_as(user, "acknowledge" | "resolve", dedup_key)``,
a person acting in PagerDuty's UI: the alert changes and each subscription receives the
signed ``incident.acknowledged`` / ``incident.resolved`` event.

Test-control endpoints, JSON in and out: ``GET /_fake/events``, ``GET /_fake/alerts``,
``POST /_fake/script`` (``{"responses": [{"status": 429, "retry_after": 3}, ...]}``),
``POST /_fake/reset``, and the way back for a peer run as a process: ``POST
/_fake/subscribe`` (``{"url", "secrets": [...]}``) and ``POST /_fake/act``
(``{"user": {"id", "name"}, "action": "acknowledge" | "resolve", "dedup_key"}``; the
answer lists what each subscription answered).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from harness.peers import pagerduty_webhooks as webhooks
from harness.peers.base import HttpPeer, PeerHTTPHandler, serve_until_signalled

__all__ = [
    "EVENT_ACTIONS",
    "SEVERITIES",
    "FakePagerDuty",
    "PdAlert",
    "PdCall",
    "PdEvent",
    "Scripted",
    "main",
    "validate_event",
]

JSONDict = dict[str, Any]

EVENT_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
SEVERITIES = frozenset({"critical", "error", "warning", "info"})
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_BODY = 512 * 1024
ROUTING_KEY_LENGTH = 32
_OPEN = ("triggered", "acknowledged")


# ---------------------------------------------------------------------------
# validation, as PagerDuty does it


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _check_links(body: JSONDict, errors: list[str]) -> None:
    for name, required in (("links", "href"), ("images", "src")):
        items = body.get(name)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(f"'{name}' must be an array")
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict) or _blank(item.get(required)):
                errors.append(f"'{name}[{i}].{required}' is missing or blank")


def _check_payload(payload: Any, errors: list[str]) -> None:
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        return
    summary = payload.get("summary")
    if _blank(summary):
        errors.append("'payload.summary' is missing or blank")
    elif _too_long(summary, MAX_SUMMARY):
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
    if _blank(payload.get("source")):
        errors.append("'payload.source' is missing or blank")
    severity = payload.get("severity")
    if severity not in SEVERITIES:
        errors.append(
            f"'payload.severity' is invalid (must be one of {', '.join(sorted(SEVERITIES))})"
        )
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp))
        except ValueError:
            errors.append("'payload.timestamp' is not an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")


def validate_event(
    body: Any, *, routing_key: str | None = None, strict_key_length: bool = False
) -> list[str]:
    """PagerDuty's objections to ``body`` (empty: the event is valid)."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    key = body.get("routing_key")
    if _blank(key):
        errors.append("'routing_key' is missing or blank")
    elif strict_key_length and isinstance(key, str) and len(key) != ROUTING_KEY_LENGTH:
        errors.append(
            f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"
        )
    elif routing_key is not None and key != routing_key:
        errors.append("Invalid routing key")
    action = body.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append("'event_action' is invalid (must be trigger, acknowledge or resolve)")
    dedup = body.get("dedup_key")
    if dedup is not None and not isinstance(dedup, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup, str) and len(dedup) > MAX_DEDUP_KEY:
        errors.append(f"'dedup_key' is longer than {MAX_DEDUP_KEY} characters")
    if action in ("acknowledge", "resolve") and _blank(dedup):
        errors.append(f"'dedup_key' is required to {action}")
    if action == "trigger":
        _check_payload(body.get("payload"), errors)
    for name in ("client", "client_url"):
        if name in body and not isinstance(body[name], str):
            errors.append(f"'{name}' must be a string")
    _check_links(body, errors)
    return errors


def _invalid(errors: list[str]) -> JSONDict:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": errors}


# ---------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PdEvent:
    """One accepted (202) event."""

    routing_key: str
    event_action: str
    dedup_key: str  # as answered (generated for a trigger without one)
    body: JSONDict = field(hash=False, repr=False)
    applied: bool  # False: an acknowledge/resolve with no open alert, dropped by PagerDuty
    at: float  # time.monotonic() on arrival

    @property
    def payload(self) -> JSONDict:
        value = self.body.get("payload")
        return value if isinstance(value, dict) else {}

    def to_json(self) -> JSONDict:
        return {
            "routing_key": self.routing_key,
            "event_action": self.event_action,
            "dedup_key": self.dedup_key,
            "applied": self.applied,
            "body": self.body,
        }


@dataclass(frozen=True)
class PdAlert:
    """A snapshot of one alert: ``history`` is every status it went through."""

    number: int  # 1, 2, ... in the order alerts were opened
    routing_key: str
    dedup_key: str
    status: str  # triggered | acknowledged | resolved
    summary: str
    severity: str
    triggers: int
    history: tuple[str, ...]

    def to_json(self) -> JSONDict:
        return {
            "number": self.number,
            "dedup_key": self.dedup_key,
            "status": self.status,
            "summary": self.summary,
            "severity": self.severity,
            "triggers": self.triggers,
            "history": list(self.history),
        }


@dataclass(frozen=True)
class PdCall:
    """Any request outside ``/_fake/``, including refused ones."""

    path: str
    http_method: str
    body: Any = field(hash=False, repr=False)
    status: int
    answer: JSONDict = field(hash=False)
    at: float


@dataclass(frozen=True)
class Scripted:
    """A scripted answer for the next ``/v2/enqueue`` call (the event is not accepted)."""

    status: int
    retry_after: int | None = None
    body: JSONDict | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"bad HTTP status {self.status}")

    @classmethod
    def rate_limited(cls, seconds: int | None = 1) -> Scripted:
        return cls(status=429, retry_after=seconds)

    @classmethod
    def server_error(cls, status: int = 500, retry_after: int | None = None) -> Scripted:
        return cls(status=status, retry_after=retry_after)

    @classmethod
    def invalid(cls, *errors: str) -> Scripted:
        return cls(status=400, body=_invalid(list(errors) or ["scripted"]))

    def answer(self) -> tuple[int, JSONDict, dict[str, str]]:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.body is not None:
            return self.status, self.body, headers
        if self.status == 429:
            body = {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. "
                "Please retry later.",
            }
        else:
            body = {"status": "error", "message": "Internal Server Error"}
        return self.status, body, headers

    @classmethod
    def from_json(cls, data: Any) -> Scripted:
        if not isinstance(data, dict) or set(data) - {"status", "retry_after", "body"}:
            raise ValueError("a scripted answer is {status, retry_after?, body?}")
        status, retry_after, body = data.get("status"), data.get("retry_after"), data.get("body")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("status must be an integer")
        if retry_after is not None and not isinstance(retry_after, int):
            raise ValueError("retry_after must be an integer or null")
        if body is not None and not isinstance(body, dict):
            raise ValueError("body must be an object or null")
        return cls(status=status, retry_after=retry_after, body=body)


# ---------------------------------------------------------------------------
# HTTP plumbing


class _Handler(PeerHTTPHandler):
    server_version = "FakePagerDuty/1.0"
    disable_nagle_algorithm = True
    timeout = 120

    @property
    def _fake(self) -> FakePagerDuty:
        fake = self.peer
        assert isinstance(fake, FakePagerDuty)
        return fake

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > 4 * MAX_BODY:
            self.close_connection = True
            self._send_json(400, _invalid(["invalid Content-Length"]), {})
            return
        data = self.rfile.read(length) if length else b""
        if url.path.startswith("/_fake/"):
            status, payload = self._fake._control(self.command, url.path[len("/_fake/") :], data)
            self._send_json(status, payload, {})
            return
        content_type = self.headers.get_content_type() if self.headers.get("Content-Type") else ""
        status, payload, extra = self._fake._api(self.command, url.path, content_type, data)
        self._send_json(status, payload, extra)


# ---------------------------------------------------------------------------
# the fake


@dataclass
class _Alert:
    number: int
    routing_key: str
    dedup_key: str
    status: str
    summary: str
    severity: str
    triggers: int = 1
    history: list[str] = field(default_factory=lambda: ["triggered"])

    def snapshot(self) -> PdAlert:
        return PdAlert(
            number=self.number,
            routing_key=self.routing_key,
            dedup_key=self.dedup_key,
            status=self.status,
            summary=self.summary,
            severity=self.severity,
            triggers=self.triggers,
            history=tuple(self.history),
        )


class FakePagerDuty(HttpPeer):
    """A fake Events API v2 on 127.0.0.1. Thread-safe."""

    label = "FakePagerDuty"
    thread_name = "fake-pagerduty-{port}"
    handler = _Handler

    def __init__(
        self,
        *,
        routing_key: str | None = None,
        strict_key_length: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.routing_key = routing_key
        self.strict_key_length = strict_key_length
        self._events: list[PdEvent] = []
        self._calls: list[PdCall] = []
        self._alerts: list[_Alert] = []
        self._script: deque[Scripted] = deque()
        self._subscriptions: list[webhooks.Subscription] = []
        self._webhooks_sent: list[webhooks.WebhookSent] = []

    # -- where it is ----------------------------------------------------------

    @property
    def events_url(self) -> str:
        """``http://127.0.0.1:PORT/v2/enqueue``: the sink's ``events_url``."""
        return f"{self.base_url}/v2/enqueue"

    # -- inspection ---------------------------------------------------------

    @property
    def events(self) -> list[PdEvent]:
        """Accepted (202) events in arrival order."""
        with self._cond:
            return list(self._events)

    @property
    def calls(self) -> list[PdCall]:
        with self._cond:
            return list(self._calls)

    @property
    def alerts(self) -> list[PdAlert]:
        with self._cond:
            return [a.snapshot() for a in self._alerts]

    def alert(self, dedup_key: str) -> PdAlert | None:
        """The newest alert with ``dedup_key`` (any routing key)."""
        with self._cond:
            found = [a for a in self._alerts if a.dedup_key == dedup_key]
            return found[-1].snapshot() if found else None

    def state(self, dedup_key: str) -> str | None:
        """``triggered`` | ``acknowledged`` | ``resolved`` for the newest alert, or None."""
        alert = self.alert(dedup_key)
        return alert.status if alert else None

    def history(self, dedup_key: str) -> list[str]:
        """Every status the alerts with ``dedup_key`` went through, oldest first."""
        with self._cond:
            return [s for a in self._alerts if a.dedup_key == dedup_key for s in a.history]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[PdEvent]:
        """Block until at least ``n`` events were accepted; return them all."""
        with self._cond:
            self._wait(lambda: len(self._events) >= n, timeout, f"{n} event(s)")
            return list(self._events)

    def _seen(self) -> str:
        seen = [(e.event_action, e.dedup_key) for e in self._events]
        refused = [(c.status, c.answer) for c in self._calls if c.status != 202]
        return f"{len(seen)} accepted: {seen!r}; refused: {refused!r}"

    # -- scripting ------------------------------------------------------------

    def fail_next(self, *answers: Scripted) -> None:
        """Answer the next ``len(answers)`` enqueue calls with these, in order."""
        with self._cond:
            self._script.extend(answers)

    def clear_script(self) -> None:
        """Forget the scripted answers not yet given (the service is back up)."""
        with self._cond:
            self._script.clear()

    def reset(self) -> None:
        with self._cond:
            self._events.clear()
            self._calls.clear()
            self._alerts.clear()
            self._script.clear()

    # -- the way back: a person acts in PagerDuty, v3 webhooks go out ----------

    def subscribe(self, url: str, *secrets: str) -> None:
        """Add a v3 webhook subscription (its URL and signing secrets, two while one
        rotates); every :meth:`act_as` is delivered to each subscription."""
        if not secrets:
            raise ValueError("a subscription signs with at least one secret")
        with self._cond:
            self._subscriptions.append(webhooks.Subscription(url=url, secrets=secrets))

    def act_as(
        self, user: webhooks.PagerDutyUser, action: str, dedup_key: str
    ) -> list[webhooks.WebhookSent]:
        """``user`` acknowledges (``action`` ``acknowledge``) or resolves (``resolve``), in
        PagerDuty's UI, the open incident of the alert with ``dedup_key``: the alert's
        status changes and each subscription receives the signed ``incident.<status>``
        event. Raises LookupError when no alert with that key is open."""
        status = {"acknowledge": "acknowledged", "resolve": "resolved"}[action]
        with self._cond:
            alert = next(
                (
                    a
                    for a in reversed(self._alerts)
                    if a.dedup_key == dedup_key and a.status in _OPEN
                ),
                None,
            )
            if alert is None:
                raise LookupError(f"no open PagerDuty alert has dedup_key {dedup_key!r}")
            if alert.status != status:
                alert.status = status
                alert.history.append(status)
            event = webhooks.incident_event(
                f"incident.{status}",
                number=alert.number,
                incident_key=dedup_key,
                status=status,
                title=alert.summary,
                agent=user,
            )
            subscriptions = list(self._subscriptions)
        sent = [webhooks.send(sub, event) for sub in subscriptions]
        with self._cond:
            self._webhooks_sent.extend(sent)
        return sent

    def _act_from_json(self, payload: Any) -> list[webhooks.WebhookSent]:
        if not isinstance(payload, dict) or payload.get("action") not in ("acknowledge", "resolve"):
            raise ValueError("expected {'user': {id, name}, 'action': acknowledge|resolve, ...}")
        user = payload.get("user") or {}
        person = webhooks.PagerDutyUser(id=str(user.get("id", "")), name=str(user.get("name", "")))
        return self.act_as(person, payload["action"], str(payload.get("dedup_key", "")))

    @property
    def webhooks_sent(self) -> list[webhooks.WebhookSent]:
        with self._cond:
            return list(self._webhooks_sent)

    # -- the API --------------------------------------------------------------

    def _api(
        self, http_method: str, path: str, content_type: str, data: bytes
    ) -> tuple[int, JSONDict, dict[str, str]]:
        arrived = time.monotonic()
        body: Any = None
        extra: dict[str, str] = {}
        with self._cond:
            if path != "/v2/enqueue":
                status, answer, extra = 404, {"status": "error", "message": "Not Found"}, {}
            elif http_method != "POST":
                status, answer, extra = 405, {"status": "error", "message": "Not Allowed"}, {}
            elif self._script:
                status, answer, extra = self._script.popleft().answer()
            else:
                body, status, answer = self._enqueue(content_type, data, arrived)
            self._calls.append(PdCall(path, http_method, body, status, answer, arrived))
            self._cond.notify_all()
        return status, answer, extra

    def _enqueue(self, content_type: str, data: bytes, arrived: float) -> tuple[Any, int, JSONDict]:
        if len(data) > MAX_BODY:
            return None, 400, _invalid([f"Event is larger than {MAX_BODY // 1024} KB"])
        if content_type not in ("application/json", ""):
            return None, 400, _invalid([f"Content-Type {content_type} is not JSON"])
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, 400, _invalid(["Event object is not valid JSON"])
        errors = validate_event(
            body, routing_key=self.routing_key, strict_key_length=self.strict_key_length
        )
        if errors:
            return body, 400, _invalid(errors)
        action: str = body["event_action"]
        key: str = body["routing_key"]
        dedup: str = body.get("dedup_key") or uuid.uuid4().hex
        applied = self._apply(action, key, dedup, body)
        self._events.append(PdEvent(key, action, dedup, body, applied, arrived))
        return body, 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    def _apply(self, action: str, routing_key: str, dedup: str, body: JSONDict) -> bool:
        open_alert = next(
            (
                a
                for a in reversed(self._alerts)
                if a.dedup_key == dedup and a.routing_key == routing_key and a.status in _OPEN
            ),
            None,
        )
        if action == "trigger":
            payload = body["payload"]
            if open_alert is None:
                self._alerts.append(
                    _Alert(
                        number=len(self._alerts) + 1,
                        routing_key=routing_key,
                        dedup_key=dedup,
                        status="triggered",
                        summary=payload["summary"],
                        severity=payload["severity"],
                    )
                )
            else:  # folded into the open alert; an acknowledged one stays acknowledged
                open_alert.triggers += 1
                open_alert.summary = payload["summary"]
                open_alert.severity = payload["severity"]
            return True
        if open_alert is None:
            return False  # PagerDuty drops it (and still answers 202)
        status = "acknowledged" if action == "acknowledge" else "resolved"
        if open_alert.status != status:
            open_alert.status = status
            open_alert.history.append(status)
        return True

    # -- /_fake/ control endpoints ------------------------------------------

    def _control(self, http_method: str, name: str, data: bytes) -> tuple[int, Any]:
        try:
            payload: Any = json.loads(data) if data.strip() else {}
            if http_method == "GET" and name == "events":
                return 200, [e.to_json() for e in self.events]
            if http_method == "GET" and name == "alerts":
                return 200, [a.to_json() for a in self.alerts]
            if http_method == "POST" and name == "script":
                items = payload.get("responses") if isinstance(payload, dict) else payload
                if not isinstance(items, list):
                    raise ValueError("expected {'responses': [...]} or a list")
                self.fail_next(*(Scripted.from_json(item) for item in items))
                return 200, {"ok": True}
            if http_method == "POST" and name == "reset":
                self.reset()
                return 200, {"ok": True}
            if http_method == "POST" and name == "subscribe":
                secrets = payload.get("secrets") if isinstance(payload, dict) else None
                if not isinstance(secrets, list) or not all(isinstance(x, str) for x in secrets):
                    raise ValueError("expected {'url': ..., 'secrets': [...]}")
                self.subscribe(str(payload.get("url", "")), *secrets)
                return 200, {"ok": True}
            if http_method == "POST" and name == "act":
                return 200, [sent.answer for sent in self._act_from_json(payload)]
        except (ValueError, LookupError) as exc:
            return 400, {"ok": False, "error": str(exc)}
        return 404, {"ok": False, "error": "not_found"}


# ---------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.peers.pagerduty",
        description="Serve a fake PagerDuty Events API v2 until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--routing-key", default=None, help="refuse any other routing key")
    args = parser.parse_args(argv)

    fake = FakePagerDuty(routing_key=args.routing_key, host=args.host, port=args.port)
    return serve_until_signalled(fake, lambda: {"events_url": fake.events_url, "port": fake.port})


if __name__ == "__main__":
    raise SystemExit(main())
