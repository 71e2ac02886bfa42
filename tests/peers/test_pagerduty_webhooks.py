"""The fake PagerDuty's way back: a person acts on an alert, each v3 subscription gets the
signed event (one ``v1=`` value per secret while a secret rotates), in-process and
through the control endpoints a peer run as a process offers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from eyetok.sources import pagerduty
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.pagerduty_webhooks import PagerDutyUser

KEY = "eyetok:acme:inc_0123456789abcdef"


class _Receiver(ThreadingHTTPServer):
    received: list[tuple[dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        answer = json.dumps({"acted": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _trigger(fake: FakePagerDuty, dedup: str) -> None:
    event = {
        "routing_key": "R0UTINGKEY0000000000000000000000",
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {
            "summary": "[SEV1] Database unreachable",
            "source": "x",
            "severity": "critical",
        },
    }
    assert httpx.post(fake.events_url, json=event).status_code == 202


def test_a_person_acting_in_pagerduty_sends_signed_events(receiver: _Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/pagerduty/acme"
    with FakePagerDuty() as fake:
        _trigger(fake, KEY)
        control = f"{fake.base_url}/_fake"
        subscribed = httpx.post(
            f"{control}/subscribe", json={"url": url, "secrets": ["old", "new"]}
        )
        assert subscribed.status_code == 200
        acted = httpx.post(
            f"{control}/act",
            json={
                "user": {"id": "PLH1HKV", "name": "Tenex Engineer"},
                "action": "acknowledge",
                "dedup_key": KEY,
            },
        )
        assert acted.json() == [{"acted": True}]
        assert fake.state(KEY) == "acknowledged"
        [(headers, body)] = receiver.received
        for secret in ("old", "new"):  # either secret verifies: a rotation in flight
            pagerduty.verify(body, headers["x-pagerduty-signature"], (secret,))
        found = pagerduty.decode(body, "acme")
        assert isinstance(found, pagerduty.PagerDutyDecision)
        assert (found.decision, found.by) == ("acknowledge", "pagerduty:Tenex Engineer (PLH1HKV)")
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("PagerDuty-Webhook/V3")

        [resolved] = fake.act_as(PagerDutyUser("PLH1HKV", "Tenex Engineer"), "resolve", KEY)
        assert resolved.status == 200
        assert fake.history(KEY) == ["triggered", "acknowledged", "resolved"]
        with pytest.raises(LookupError):  # resolved: nothing open to act on
            fake.act_as(PagerDutyUser("PLH1HKV", "Tenex Engineer"), "resolve", KEY)
        nothing = httpx.post(f"{control}/act", json={"action": "resolve", "dedup_key": "nope"})
        assert nothing.status_code == 400
        assert httpx.post(f"{control}/act", json={"action": "snooze"}).status_code == 400
        assert httpx.post(f"{control}/subscribe", json={"url": url}).status_code == 400
