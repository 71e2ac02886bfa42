"""Run sink ownership handshakes against a daemon through its real HTTP surfaces."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from eyetok import slack_events
from harness.peers.oauth import FakeOAuth
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID

ROOT_TOKEN = "root-token-for-tests"
SLACK_SIGNING_SECRET = "slack-signing-secret-for-tests"


def slack_event_body(nonce_text: str, *, channel_type: str = "im", team: str = TEAM_ID) -> bytes:
    """A DM event carrying ``nonce_text``, from workspace ``team`` (by default the fake
    Slack's, where the bot token of the tests' sinks lives)."""
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


def tenant_team(tenant: str) -> str:
    """The team id of ``tenant``'s own Slack workspace on the fake Slack."""
    return "T0" + tenant.upper().replace("-", "").replace("_", "")


def tenant_slack_token(slack: FakeSlack, tenant: str) -> str:
    """A bot token of ``tenant``'s own workspace (not the operator's) on ``slack``."""
    token = f"xoxb-{tenant}"
    slack.add_workspace(token, tenant_team(tenant))
    return token


def slack_headers(body: bytes, *, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": slack_events.sign(body, stamp, secret),
    }


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ROOT_TOKEN}"}


async def verify_slack(base_url: str, sink_id: str = "slack", *, team: str = TEAM_ID) -> None:
    """The Slack handshake: start it, DM the nonce, wait until the sink is deliverable."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        started = await client.post(
            f"/api/v1/sinks/{sink_id}/verification",
            json={"requested_by": "tests"},
            headers=_auth(),
        )
        assert started.status_code == 200, started.text
        body = slack_event_body(f"my nonce: {started.json()['nonce']}", team=team)
        sent = await client.post("/slack/events", content=body, headers=slack_headers(body))
        assert sent.status_code == 200, sent.text
        for _ in range(200):
            listed = (await client.get("/api/v1/sinks", headers=_auth())).json()["sinks"]
            if any(s["sink_id"] == sink_id and s["deliverable"] for s in listed):
                return
            import trio

            await trio.sleep(0.02)
    raise AssertionError(f"sink {sink_id} did not become deliverable")


def verify_slack_sync(base_url: str, sink_id: str = "slack", *, team: str = TEAM_ID) -> None:
    """The same handshake from a plain thread (subprocess tests, benchmarks)."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        started = _start(client, sink_id)
        body = slack_event_body(f"my nonce: {started['nonce']}", team=team)
        sent = client.post("/slack/events", content=body, headers=slack_headers(body))
        assert sent.status_code == 200, sent.text
        _wait_deliverable(client, sink_id)


def verify_pagerduty_sync(base_url: str, sink_id: str, oauth: FakeOAuth) -> None:
    """The PagerDuty handshake from a plain thread: start it, the account owner approves
    on the (fake) OAuth server, the browser comes back to the callback; wait until the
    sink is deliverable."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        started = _start(client, sink_id)
        query = dict(parse_qsl(urlsplit(started["url"]).query))
        code = oauth.approve(query)
        callback = client.get(
            "/oauth/pagerduty/callback", params={"state": query["state"], "code": code}
        )
        assert callback.status_code == 200, callback.text
        _wait_deliverable(client, sink_id)


def _wait_deliverable(client: httpx.Client, sink_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = client.get("/api/v1/sinks", headers=_auth()).json()["sinks"]
        if any(s["sink_id"] == sink_id and s["deliverable"] for s in listed):
            return
        time.sleep(0.02)
    raise AssertionError(f"sink {sink_id} did not become deliverable")


def _start(client: httpx.Client, sink_id: str) -> dict[str, Any]:
    started = client.post(
        f"/api/v1/sinks/{sink_id}/verification",
        json={"requested_by": "tests"},
        headers=_auth(),
    )
    assert started.status_code == 200, started.text
    answer: dict[str, Any] = started.json()
    return answer
