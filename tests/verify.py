"""Run sink ownership handshakes against a daemon through its real HTTP surfaces."""

from __future__ import annotations

import json
import time

import httpx

from eyetok import slack_events

ROOT_TOKEN = "root-token-for-tests"
SLACK_SIGNING_SECRET = "slack-signing-secret-for-tests"


def slack_event_body(nonce_text: str, *, channel_type: str = "im", team: str = "T0TEST") -> bytes:
    return json.dumps(
        {
            "type": "event_callback",
            "team_id": team,
            "event": {
                "type": "message",
                "channel": "D0EYETOK" if channel_type == "im" else "C0PUBLIC",
                "channel_type": channel_type,
                "user": "U0OWNER",
                "text": nonce_text,
            },
        }
    ).encode()


def slack_headers(body: bytes, *, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": slack_events.sign(body, stamp, secret),
    }


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ROOT_TOKEN}"}


async def verify_slack(base_url: str, sink_id: str = "slack") -> None:
    """The Slack handshake: start it, DM the nonce, wait until the sink is deliverable."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        started = await client.post(
            f"/api/v1/sinks/{sink_id}/verification",
            json={"requested_by": "tests"},
            headers=_auth(),
        )
        assert started.status_code == 200, started.text
        body = slack_event_body(f"my nonce: {started.json()['nonce']}")
        sent = await client.post("/slack/events", content=body, headers=slack_headers(body))
        assert sent.status_code == 200, sent.text
        for _ in range(200):
            listed = (await client.get("/api/v1/sinks", headers=_auth())).json()["sinks"]
            if any(s["sink_id"] == sink_id and s["deliverable"] for s in listed):
                return
            import trio

            await trio.sleep(0.02)
    raise AssertionError(f"sink {sink_id} did not become deliverable")


def verify_slack_sync(base_url: str, sink_id: str = "slack") -> None:
    """The same handshake from a plain thread (subprocess tests, benchmarks)."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        started = client.post(
            f"/api/v1/sinks/{sink_id}/verification",
            json={"requested_by": "tests"},
            headers=_auth(),
        )
        assert started.status_code == 200, started.text
        body = slack_event_body(f"my nonce: {started.json()['nonce']}")
        sent = client.post("/slack/events", content=body, headers=slack_headers(body))
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listed = client.get("/api/v1/sinks", headers=_auth()).json()["sinks"]
            if any(s["sink_id"] == sink_id and s["deliverable"] for s in listed):
                return
            time.sleep(0.02)
    raise AssertionError(f"sink {sink_id} did not become deliverable")
