"""A local fake of the FreeScout API (the API & Webhooks module) on 127.0.0.1.

It speaks the documented wire format and refuses what a real FreeScout refuses:

* every call needs ``X-FreeScout-API-Key`` (also accepted: the ``api_key`` query
  parameter); a missing or wrong key is HTTP 401;
* ``POST /api/conversations`` — ``type`` (email|phone|chat), ``mailboxId`` (a mailbox
  it has), ``subject``, ``customer`` (with ``email`` for an email conversation),
  ``threads`` (at least one; each ``type`` customer|message|note and ``text``; a message
  or note names its ``user``), optional ``tags``, ``status``, ``customFields``...;
  201 with ``Resource-ID`` and the conversation;
* ``POST /api/conversations/{id}/threads`` — one thread as above; 201, ``Resource-ID``;
* ``PUT /api/conversations/{id}`` — ``status`` (active|pending|closed|spam) with
  ``byUser``, ...; 204;
* ``GET /api/conversations`` — ``mailboxId``, ``subject`` (contains), ``status``,
  ``tag``; ``{"_embedded": {"conversations": [...]}, "page": {...}}``.

A bad body is HTTP 400 with FreeScout's error shape; an unknown conversation 404.
:meth:`FakeFreeScout.fail` makes every call answer a status (500, 429 with Retry-After)
until :meth:`FakeFreeScout.recover`; :meth:`FakeFreeScout.hold_creates` records a new
conversation at once but answers only after a delay (a client killed meanwhile never
hears of it).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler

API_KEY = "fs-test-key"
MAILBOX_ID = 3
THREAD_TYPES = frozenset({"customer", "message", "note"})
STATUSES = frozenset({"active", "pending", "closed", "spam"})
_CONVERSATION_KEYS = frozenset(
    {
        "type",
        "mailboxId",
        "subject",
        "customer",
        "threads",
        "imported",
        "assignTo",
        "status",
        "customerWaitingSince",
        "tags",
        "customFields",
        "createdAt",
        "closedAt",
    }
)
_THREAD_KEYS = frozenset(
    {"type", "text", "customer", "user", "imported", "status", "state", "createdAt", "cc", "bcc"}
)
_UPDATE_KEYS = frozenset({"byUser", "status", "assignTo", "mailboxId", "customerId", "subject"})


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class FsThread:
    thread_id: int
    type: str
    text: str
    user: int | None


@dataclass
class FsConversation:
    conversation_id: int
    number: int
    mailbox_id: int
    subject: str
    customer_email: str
    tags: list[str]
    status: str
    threads: list[FsThread] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.conversation_id,
            "number": self.number,
            "threadsCount": len(self.threads),
            "type": "email",
            "status": self.status,
            "state": "published",
            "subject": self.subject,
            "mailboxId": self.mailbox_id,
            "customer": {"email": self.customer_email},
            "_embedded": {
                "tags": [{"id": i + 1, "name": t} for i, t in enumerate(self.tags)],
                "threads": [
                    {"id": t.thread_id, "type": t.type, "body": t.text} for t in self.threads
                ],
            },
        }


@dataclass(frozen=True)
class FsCall:
    method: str
    path: str
    status: int
    body: Any


def _require(body: dict[str, Any], key: str, kind: type, path: str = "") -> Any:
    value = body.get(key)
    if value is None:
        raise _Invalid(path + key, "The field is required.")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Invalid(path + key, f"The field must be of type {kind.__name__}.")
    if isinstance(value, str) and not value.strip():
        raise _Invalid(path + key, "The field is required.")
    return value


def _unknown(body: dict[str, Any], allowed: frozenset[str], path: str = "") -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise _Invalid(path + extra[0], "Unknown field.")


def _thread(body: Any, path: str) -> tuple[str, str, int | None]:
    if not isinstance(body, dict):
        raise _Invalid(path.rstrip("."), "A thread must be an object.")
    _unknown(body, _THREAD_KEYS, path)
    kind = _require(body, "type", str, path)
    if kind not in THREAD_TYPES:
        raise _Invalid(path + "type", f"One of: {', '.join(sorted(THREAD_TYPES))}.")
    text = _require(body, "text", str, path)
    user = _require(body, "user", int, path) if kind in ("message", "note") else None
    if kind == "customer" and "customer" in body:
        _require(body["customer"], "email", str, path + "customer.")
    return kind, text, user


class _Handler(PeerHTTPHandler):
    server_version: ClassVar[str] = "FakeFreeScout"

    def _peer(self) -> FakeFreeScout:
        peer = self.peer
        assert isinstance(peer, FakeFreeScout)
        return peer

    def _answer(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload, headers = self._peer().handle(
            method, split.path, dict(parse_qsl(split.query)), dict(self.headers.items()), raw
        )
        if status == 204:
            self.send_response(204)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._send_json(status, payload, headers)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")


class FakeFreeScout(HttpPeer):
    label = "FakeFreeScout"
    thread_name = "fake-freescout-{port}"
    handler = _Handler

    def __init__(
        self, *, api_key: str = API_KEY, mailbox_id: int = MAILBOX_ID, host: str = "127.0.0.1"
    ) -> None:
        super().__init__(host=host)
        self.api_key = api_key
        self.mailbox_id = mailbox_id
        self._conversations: dict[int, FsConversation] = {}
        self._calls: list[FsCall] = []
        self._next_id = 100
        self._failing: tuple[int, str | None] | None = None
        self._hold_s = 0.0

    # -- test controls ----------------------------------------------------------------

    def fail(self, status: int, *, retry_after: str | None = None) -> None:
        """Every call answers ``status`` (with Retry-After) until :meth:`recover`."""
        with self._cond:
            self._failing = (status, retry_after)

    def recover(self) -> None:
        with self._cond:
            self._failing = None

    def hold_creates(self, seconds: float) -> None:
        """A new conversation is recorded at once, its answer sent ``seconds`` later."""
        with self._cond:
            self._hold_s = seconds

    @property
    def conversations(self) -> list[FsConversation]:
        with self._cond:
            return list(self._conversations.values())

    def calls(self, method: str | None = None) -> list[FsCall]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(self, predicate: Any, what: str, timeout: float = 20.0) -> None:
        """Block (a worker thread, never the event loop) until ``predicate(self)``."""
        self._wait(lambda: predicate(self), timeout, what)

    def _seen(self) -> str:
        return f"conversations: {[c.to_json() for c in self._conversations.values()]}"

    # -- the API (handler threads) ----------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        hold = 0.0
        with self._cond:
            status, payload, answer_headers = self._locked(method, path, query, headers, raw)
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            self._calls.append(FsCall(method=method, path=path, status=status, body=body))
            if method == "POST" and path == "/api/conversations" and status == 201:
                hold = self._hold_s
            self._cond.notify_all()
        if hold:
            threading.Event().wait(hold)
        return status, payload, answer_headers

    def _locked(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        key = lowered.get("x-freescout-api-key") or query.get("api_key")
        if key != self.api_key:
            return 401, {"message": "API Key is either not provided or not valid."}, {}
        if self._failing is not None:
            status, retry_after = self._failing
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            return status, {"message": "Failing on purpose (test)."}, extra
        body: Any = {}
        if method in ("POST", "PUT"):
            if "application/json" not in lowered.get("content-type", ""):
                return 400, {"message": "The body must be JSON (Content-Type)."}, {}
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return 400, {"message": "The body is not valid JSON."}, {}
            if not isinstance(body, dict):
                return 400, {"message": "The body must be a JSON object."}, {}
        try:
            if path == "/api/conversations" and method == "POST":
                return self._create(body)
            if path == "/api/conversations" and method == "GET":
                return self._list(query)
            match = re.fullmatch(r"/api/conversations/(\d+)(/threads)?", path)
            if match is None:
                return 404, {"message": "Not found."}, {}
            conversation = self._conversations.get(int(match.group(1)))
            if conversation is None:
                return 404, {"message": "Conversation not found."}, {}
            if match.group(2) and method == "POST":
                return self._add_thread(conversation, body)
            if not match.group(2) and method == "PUT":
                return self._update(conversation, body)
            if not match.group(2) and method == "GET":
                return 200, conversation.to_json(), {}
            return 405, {"message": "Method not allowed."}, {}
        except _Invalid as exc:
            return (
                400,
                {
                    "message": "Invalid data",
                    "_embedded": {"errors": [{"path": exc.path, "message": exc.message}]},
                },
                {},
            )

    def _create(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        _unknown(body, _CONVERSATION_KEYS)
        kind = _require(body, "type", str)
        if kind not in ("email", "phone", "chat"):
            raise _Invalid("type", "One of: email, phone, chat.")
        mailbox = _require(body, "mailboxId", int)
        if mailbox != self.mailbox_id:
            raise _Invalid("mailboxId", "Mailbox not found.")
        subject = _require(body, "subject", str)
        customer = _require(body, "customer", dict)
        email = _require(customer, "email", str, "customer.")
        threads = _require(body, "threads", list)
        if not threads:
            raise _Invalid("threads", "At least one thread is required.")
        parsed = [_thread(t, f"threads[{i}].") for i, t in enumerate(threads)]
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise _Invalid("tags", "A list of tag names.")
        status = body.get("status", "active")
        if status not in STATUSES:
            raise _Invalid("status", f"One of: {', '.join(sorted(STATUSES))}.")
        self._next_id += 1
        conversation = FsConversation(
            conversation_id=self._next_id,
            number=self._next_id + 1000,
            mailbox_id=mailbox,
            subject=subject,
            customer_email=email,
            tags=list(tags),
            status=status,
        )
        for kind_, text, user in parsed:
            self._next_id += 1
            conversation.threads.append(FsThread(self._next_id, kind_, text, user))
        self._conversations[conversation.conversation_id] = conversation
        return 201, conversation.to_json(), {"Resource-ID": str(conversation.conversation_id)}

    def _add_thread(
        self, conversation: FsConversation, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        kind, text, user = _thread(body, "")
        self._next_id += 1
        conversation.threads.append(FsThread(self._next_id, kind, text, user))
        return 201, {"id": self._next_id, "type": kind}, {"Resource-ID": str(self._next_id)}

    def _update(
        self, conversation: FsConversation, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        _unknown(body, _UPDATE_KEYS)
        _require(body, "byUser", int)
        if "status" in body:
            status = _require(body, "status", str)
            if status not in STATUSES:
                raise _Invalid("status", f"One of: {', '.join(sorted(STATUSES))}.")
            conversation.status = status
        return 204, None, {}

    def _list(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        found = [
            c
            for c in self._conversations.values()
            if ("mailboxId" not in query or str(c.mailbox_id) == query["mailboxId"])
            and query.get("subject", "").lower() in c.subject.lower()
            and ("status" not in query or c.status == query["status"])
            and ("tag" not in query or query["tag"] in c.tags)
        ]
        return (
            200,
            {
                "_embedded": {"conversations": [c.to_json() for c in found]},
                "page": {
                    "size": 50,
                    "totalElements": len(found),
                    "totalPages": 1,
                    "number": 1,
                },
            },
            {},
        )
