"""The signed requests the ingest bench sends: real Sentry event_alert fixtures, each
made unique (its own issue id, event id and title marker) and signed like Sentry does."""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass
from typing import Any

from bench.ingest import BURST_FIXTURES, FIXTURE_DIR, HOST, TRICKLE_FIXTURES
from eyetok.sources.sentry import sign


@dataclass
class Request:
    key: str  # "b000123": phase letter + index; also the title marker's suffix
    issue_id: str
    body: bytes
    raw: bytes  # the whole HTTP/1.1 request, pre-serialised
    headers: dict[str, str]


class RequestFactory:
    """Variants of real fixtures: a distinct issue id, event id and title marker each."""

    def __init__(self, secret: str, host: str, tag: str) -> None:
        self.secret = secret
        self.host = host
        self.tag = tag
        self._templates: dict[str, dict[str, Any]] = {
            name: json.loads((FIXTURE_DIR / name).read_text(encoding="utf-8"))
            for name in {*BURST_FIXTURES, *TRICKLE_FIXTURES}
        }
        self._issue_seq = 8_000_000_000

    def marker(self, key: str) -> str:
        return f"[bench-{self.tag}-{key}]"

    def make(self, key: str, fixture: str, port: int) -> Request:
        self._issue_seq += 1
        issue_id = str(self._issue_seq)
        event_id = secrets.token_hex(16)
        payload = copy.deepcopy(self._templates[fixture])
        event = payload["data"]["event"]
        old_event, old_issue = event.get("event_id", ""), str(event.get("issue_id", ""))
        event["event_id"] = event_id
        event["issue_id"] = issue_id
        event["title"] = f"{event.get('title', '')} {self.marker(key)}"
        for url_key in ("url", "web_url", "issue_url"):
            if isinstance(event.get(url_key), str):
                event[url_key] = (
                    event[url_key].replace(old_event, event_id).replace(old_issue, issue_id)
                )
        body = json.dumps(payload, indent=2).encode("utf-8")  # the fixtures' own layout
        headers = {
            "Content-Type": "application/json",
            "Sentry-Hook-Resource": "event_alert",
            "Sentry-Hook-Signature": sign(body, self.secret),
        }
        head = (
            f"POST /hooks/sentry HTTP/1.1\r\nHost: {self.host}:{port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        return Request(key, issue_id, body, head.encode("latin-1") + body, headers)

    def batch(self, phase: str, count: int, fixtures: tuple[str, ...], port: int) -> list[Request]:
        return [
            self.make(f"{phase}{i:06d}", fixtures[i % len(fixtures)], port) for i in range(count)
        ]


def retarget(requests: list[Request], old_port: int, new_port: int) -> list[Request]:
    """The same requests (same bodies, same signatures) for another port."""
    old, new = f"{HOST}:{old_port}".encode(), f"{HOST}:{new_port}".encode()
    return [
        Request(r.key, r.issue_id, r.body, r.raw.replace(old, new, 1), r.headers) for r in requests
    ]
