"""A bounded stream of distinct signed Sentry webhooks, posted from worker threads."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from eyetok.sources import sentry
from tests.conftest import FIXTURES


def variant(n: int, fixture: str = "event_alert_fatal") -> bytes:
    """The fixture as a distinct Sentry issue ``n`` (its own incident, its own title)."""
    payload = json.loads((FIXTURES / f"{fixture}.json").read_text())
    event = payload["data"]["event"]
    event["issue_id"] = str(9_000_000 + n)
    event["event_id"] = f"{n:032x}"
    event["title"] = f"load-{n:06d} {event['title']}"
    return json.dumps(payload).encode()


@dataclass
class Stream:
    """Posts signals 0..n-1, each until it gets an answer or the deadline passes."""

    url: Callable[[], str]
    secret: str
    n: int
    concurrency: int = 8
    deadline_s: float = 60.0
    accepted: dict[int, dict[str, str]] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)  # n -> last non-202 status
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, on_each: Callable[[int], None] | None = None) -> None:
        stop_at = time.monotonic() + self.deadline_s
        with (
            httpx.Client(timeout=10.0) as client,
            ThreadPoolExecutor(self.concurrency) as pool,
        ):
            list(pool.map(lambda i: self._one(client, i, stop_at, on_each), range(self.n)))

    def _one(
        self,
        client: httpx.Client,
        i: int,
        stop_at: float,
        on_each: Callable[[int], None] | None,
    ) -> None:
        body = variant(i)
        headers = {
            "content-type": "application/json",
            "sentry-hook-resource": "event_alert",
            "sentry-hook-signature": sentry.sign(body, self.secret),
        }
        while time.monotonic() < stop_at:
            try:
                response = client.post(self.url() + "/hooks/sentry", content=body, headers=headers)
            except httpx.HTTPError:
                with self._lock:
                    self.failures += 1
                time.sleep(0.05)  # the daemon is down or restarting: try again
                continue
            if response.status_code == 202:
                with self._lock:
                    self.accepted[i] = response.json()
                if on_each is not None:
                    on_each(i)
                return
            with self._lock:
                self.refused[i] = response.status_code
            time.sleep(0.05)
