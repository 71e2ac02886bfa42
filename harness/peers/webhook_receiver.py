"""A local webhook receiver that checks Standard Webhooks signatures on its own.

Standard library only (a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread), and
the signature check is written out here, not imported from EyeTok, so a bug in
``eyetok.standard_webhooks`` cannot hide itself by being used on both ends:

    signed content = f"{webhook-id}.{webhook-timestamp}.".encode() + raw body
    key            = base64-decode(secret without its "whsec_" prefix)
    a signature    = "v1," + base64(HMAC-SHA256(key, signed content))
    the header     = signatures separated by single spaces

A delivery verifies when its timestamp is within ``tolerance_s`` of the receiver's
``now()`` and at least one ``v1`` signature matches one of the receiver's secrets.
``secrets`` maps a label ("new", "old" ...) to a ``whsec_`` secret; each delivery records
every label that verified it. An unverified delivery is answered 401; a verified one
with the next scripted :class:`Answer` (``fail_next``), else 200. Every request is
recorded, with the status answered, before the answer goes out.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.peers.base import HttpPeer, PeerHTTPHandler

__all__ = ["Answer", "ReceivedWebhook", "WebhookReceiver"]

_MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """A scripted answer for one upcoming verified delivery."""

    status: int = 200
    retry_after: str | None = None  # the Retry-After header, verbatim
    body: bytes = b""

    @classmethod
    def server_error(cls, status: int = 500) -> Answer:
        return cls(status=status)

    @classmethod
    def rate_limited(cls, retry_after: str | int = 7) -> Answer:
        return cls(status=429, retry_after=str(retry_after))

    @classmethod
    def gone(cls) -> Answer:
        return cls(status=410)


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str] = field(hash=False)  # lower-cased names
    body: bytes
    verified_by: tuple[str, ...]  # labels of the secrets that verified it; () if none
    problem: str | None  # why it did not verify
    status: int  # what the receiver answered
    at: float  # time.monotonic() on arrival

    @property
    def verified(self) -> bool:
        return bool(self.verified_by)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def timestamp(self) -> int | None:
        raw = self.headers.get("webhook-timestamp")
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()

    def json(self) -> Any:
        return json.loads(self.body)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def check_signature(
    secrets: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float,
) -> tuple[tuple[str, ...], str | None]:
    """(labels of the secrets that verify, problem) for one request; independent of EyeTok."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    header = headers.get("webhook-signature")
    if not msg_id or not stamp or not header:
        return (), "missing webhook-id, webhook-timestamp or webhook-signature"
    if not stamp.isdigit():
        return (), f"timestamp {stamp!r} is not integer seconds"
    if abs(now - int(stamp)) > tolerance_s:
        return (), f"timestamp {stamp} is {now - int(stamp):+.0f}s off"
    content = f"{msg_id}.{stamp}.".encode() + body
    offered = []
    for entry in header.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1":
            with contextlib.suppress(binascii.Error):
                offered.append(base64.b64decode(sig, validate=True))
    labels = []
    for label, secret in secrets.items():
        expected = hmac.new(_key(secret), content, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            labels.append(label)
    if not labels:
        return (), f"none of {len(offered)} v1 signature(s) matches a known secret"
    return tuple(labels), None


class _Handler(PeerHTTPHandler):
    server_version = "FakeWebhookReceiver/1.0"
    timeout = 60

    @property
    def _receiver(self) -> WebhookReceiver:
        receiver = self.peer
        assert isinstance(receiver, WebhookReceiver)
        return receiver

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        arrived = time.monotonic()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._send(Answer(status=400))
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer, delay = self._receiver._receive(self.command, self.path, headers, body, arrived)
        if delay > 0:
            time.sleep(delay)
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Length", str(len(answer.body)))
            if answer.retry_after is not None:
                self.send_header("Retry-After", answer.retry_after)
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class WebhookReceiver(HttpPeer):
    """A Standard Webhooks receiver on 127.0.0.1. Thread-safe.

    ``now`` is the receiver's wall clock in Unix seconds (default ``time.time``): tests
    that sign with a fixed or mock clock pass the same clock here.
    """

    label = "WebhookReceiver"
    thread_name = "webhook-receiver-{port}"
    handler = _Handler

    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tolerance_s: float = 300,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host=host, port=port)
        self._secrets = dict(secrets)
        for secret in self._secrets.values():
            _key(secret)  # fail early on a malformed test secret
        self.tolerance_s = tolerance_s
        self._now = now
        self._deliveries: list[ReceivedWebhook] = []
        self._script: deque[Answer] = deque()
        self._delay = 0.0

    # -- where it is ----------------------------------------------------------

    @property
    def url(self) -> str:
        """Where to POST: ``http://127.0.0.1:PORT/hooks/eyetok``."""
        return f"http://{self._host}:{self.port}/hooks/eyetok"

    # -- control ------------------------------------------------------------

    def set_secrets(self, secrets: Mapping[str, str]) -> None:
        with self._cond:
            self._secrets = dict(secrets)

    def fail_next(self, *answers: Answer) -> None:
        """Answer the next verified deliveries with these, in order."""
        with self._cond:
            self._script.extend(answers)

    def clear_script(self) -> None:
        """Forget the scripted answers not yet given (the endpoint is back up)."""
        with self._cond:
            self._script.clear()

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._delay = max(0.0, float(seconds))

    def reset(self) -> None:
        with self._cond:
            self._deliveries.clear()
            self._script.clear()
            self._delay = 0.0

    # -- inspection ---------------------------------------------------------

    @property
    def deliveries(self) -> list[ReceivedWebhook]:
        with self._cond:
            return list(self._deliveries)

    def by_id(self, webhook_id: str) -> list[ReceivedWebhook]:
        """Every attempt carrying this ``webhook-id`` (a receiver's dedupe key)."""
        return [d for d in self.deliveries if d.webhook_id == webhook_id]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        """Block until ``n`` requests arrived; the first ``n``. Raises ``TimeoutError``.
        From trio: ``await trio.to_thread.run_sync(receiver.wait_for, n)``."""
        with self._cond:
            if not self._until(lambda: len(self._deliveries) >= n, timeout):
                raise TimeoutError(f"{len(self._deliveries)} of {n} deliveries after {timeout}s")
            return self._deliveries[:n]

    # -- internals (handler threads) ------------------------------------------

    def _receive(
        self, method: str, path: str, headers: dict[str, str], body: bytes, arrived: float
    ) -> tuple[Answer, float]:
        with self._cond:
            secrets = dict(self._secrets)
        labels, problem = check_signature(
            secrets, headers, body, now=self._now(), tolerance_s=self.tolerance_s
        )
        with self._cond:
            if method != "POST":
                answer = Answer(status=405)
            elif not labels:
                answer = Answer(status=401)
            elif self._script:
                answer = self._script.popleft()
            else:
                answer = Answer(status=200)
            self._deliveries.append(
                ReceivedWebhook(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    verified_by=labels,
                    problem=problem,
                    status=answer.status,
                    at=arrived,
                )
            )
            self._cond.notify_all()
            return answer, self._delay
