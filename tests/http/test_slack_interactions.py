"""The Acknowledge button on a cluster notice, pressed in Slack, reaches EyeTok at the
manifest's Interactivity Request URL and records the acknowledgement."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import httpx
import trio

from actors.sinks.slack.render import ACKNOWLEDGE_ACTION
from eyetok.http import slack_interactions
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from tests.conftest import (
    daemon_settings,
    eventually,
    fixture_body,
    signed_headers,
    start_daemon,
)
from tests.http.test_budgets_and_suppression import HOOK_TOKEN, _post, _verdict
from tests.verify import ROOT_TOKEN, slack_headers, tenant_slack_token

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
CONFIG = """
suppression: {hold_s: 0.3, quiet_s: 30, min_tenants: 2, min_share: 0.5}
tenants:
  operator: {tier: operator}
  t1:
    tier: team
    hook_token_env: HOOK_TOKEN
    policy: {routes: {SEV2: [{sink: t1-slack, target: "#t1"}], SEV2.5: [{sink: t1-slack, target: "#t1"}]}}
  t2:
    tier: team
    hook_token_env: HOOK_TOKEN
    policy: {routes: {SEV2: [{sink: t2-slack, target: "#t2"}], SEV2.5: [{sink: t2-slack, target: "#t2"}]}}
sinks:
  slack: {type: slack, tenant: operator}
  t1-slack: {type: slack, tenant: t1, token_env: T1_SLACK_TOKEN}
  t2-slack: {type: slack, tenant: t2, token_env: T2_SLACK_TOKEN}
"""  # noqa: E501


def _pressed(value: str, *, user: str = "dana") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0DANA", "username": user},
        "team": {"id": TEAM_ID},  # the operator's workspace, where its sink is verified
        "actions": [{"action_id": ACKNOWLEDGE_ACTION, "value": value, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed(body: bytes) -> dict[str, str]:
    return slack_headers(body) | {"content-type": "application/x-www-form-urlencoded"}


def test_the_button_and_the_endpoint_agree_on_the_action() -> None:
    assert slack_interactions.ACKNOWLEDGE_ACTION == ACKNOWLEDGE_ACTION


async def test_pressing_acknowledge_in_slack_acknowledges_the_cluster(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=CONFIG,
        HOOK_TOKEN=HOOK_TOKEN,
        T1_SLACK_TOKEN=tenant_slack_token(fake_slack, "t1"),
        T2_SLACK_TOKEN=tenant_slack_token(fake_slack, "t2"),
    )
    daemon = await start_daemon(nursery, settings)
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        for t in ("t1", "t2"):
            await _post(client, f"{base}/hooks/probe/{t}", _verdict(f"{t}.registry.example"))

        async def fired() -> bool:
            rows = (await client.get("/api/v1/suppressions", headers=AUTH)).json()
            return len(rows["suppressions"]) == 1

        await eventually(fired)
        [row] = (await client.get("/api/v1/suppressions", headers=AUTH)).json()["suppressions"]
        value = f"cluster:{row['cluster_id']}"
        # a human presses the button of the notice Slack shows (the tenants' pages withheld)
        [shown] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        assert value in json.dumps(shown.blocks)
        body = _pressed(value)
        unsigned = await client.post("/slack/actions", content=body)
        assert unsigned.status_code == 401
        pressed = await client.post("/slack/actions", content=body, headers=_signed(body))
        assert pressed.status_code == 200, pressed.text
        [row] = (await client.get("/api/v1/suppressions", headers=AUTH)).json()["suppressions"]
        assert row["acked_by"] == "slack:dana (U0DANA)"
        # the notice's read receipt (the digest reader): who and what, once
        audit = await client.get(
            "/api/v1/audit", params={"event": "digest_acknowledged"}, headers=AUTH
        )
        [receipt] = [json.loads(r["detail"]) for r in audit.json()["audit"]]
        assert receipt["what"] == f"cluster:{row['cluster_id']}"
        assert receipt["by"] == "slack:dana (U0DANA)"
        unknown = _pressed("cluster:clu_nope")
        answer = await client.post("/slack/actions", content=unknown, headers=_signed(unknown))
        assert answer.json() == {"ok": True}  # Slack shows no error; the log says why
    daemon.request_stop()


async def test_without_a_signing_secret_the_answer_names_it(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path, fake_slack, SLACK_SIGNING_SECRET="")
    daemon = await start_daemon(nursery, settings, verify=())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
        answer = await client.post("/slack/interactions", content=_pressed("cluster:x"))
    assert answer.status_code == 503
    assert "SLACK_SIGNING_SECRET" in answer.json()["error"]
    daemon.request_stop()


async def test_pressing_acknowledge_on_a_sev1_acknowledges_the_incident(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        body = fixture_body("event_alert_fatal")
        opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
        assert opened.status_code == 202, opened.text
        incident_id = opened.json()["incident_id"]
        [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        assert post.channel == "raxx-ops-alert-SEV1"
        buttons = [
            element
            for block in post.blocks or []
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        assert [(b["text"]["text"], b["value"]) for b in buttons] == [
            ("Acknowledge", f"incident:{incident_id}"),
            ("Resolve…", f"incident:{incident_id}"),
        ]
        forged = _pressed(f"incident:{incident_id}")
        refused = await client.post(
            "/slack/interactions", content=forged, headers=_signed(forged + b"x")
        )
        assert refused.status_code == 401
        pressed_body = _pressed(f"incident:{incident_id}")
        pressed = await client.post(
            "/slack/interactions", content=pressed_body, headers=_signed(pressed_body)
        )
        assert pressed.status_code == 200, pressed.text
        listed = await client.get("/api/v1/incidents", params={"open": "1"}, headers=AUTH)
        [incident] = listed.json()["incidents"]
        assert incident["status"] == "acknowledged"
        assert incident["acknowledged_by"] == "slack:dana (U0DANA)"
        assert incident["acknowledged_at"] is not None
        # the first post now says who acknowledged it (only Resolve… is left); a thread reply
        [update] = await trio.to_thread.run_sync(
            lambda: fake_slack.wait_for_calls(1, method="chat.update")
        )
        assert update.body["ts"] == post.ts
        assert "Acknowledged by slack:dana (U0DANA)" in json.dumps(update.body["blocks"])
        assert ACKNOWLEDGE_ACTION not in json.dumps(update.body["blocks"])
        [_, reply] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
        assert reply.thread_ts == post.ts
        assert reply.text is not None
        assert reply.text.startswith("Acknowledged by slack:dana (U0DANA)")
        again = await client.post(
            "/slack/interactions", content=pressed_body, headers=_signed(pressed_body)
        )
        assert again.status_code == 200
        audit = await client.get("/api/v1/audit", headers=AUTH)
        assert audit.status_code == 200, audit.text
        events = [row["event"] for row in audit.json()["audit"]]
        assert events.count("incident_acknowledged") == 1
    daemon.request_stop()
