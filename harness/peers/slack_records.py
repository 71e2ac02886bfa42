"""What the fake Slack records (each post, each request) and what a test scripts for the
next ``chat.postMessage`` calls: plain values, JSON both ways for the ``/_fake/``
endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]


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
