"""Through the daemon (`eyetok run`'s Daemon, in process): an H12 storm opens a SEV2, the
matching playbook's read-only check runs and its remediation is proposed in the thread
with Approve and Reject; nothing calls Heroku until a human presses Approve in Slack
(a signed interactivity request); then the dyno restart reaches the fake Heroku Platform
API once, and the thread says what it answered. No credential appears in any post."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import trio

from eyetok.playbooks.posts import APPROVE_ACTION, REJECT_ACTION
from harness.peers.platform import HEROKU_ACCEPT, FakeHeroku, FakeService
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, fixture_body, signed_headers, start_daemon
from tests.verify import ROOT_TOKEN, slack_headers


def config(heroku: FakeHeroku, service: FakeService) -> str:
    return f"""
integrations:
  heroku: {{api_url: "{heroku.base_url}", token_env: HEROKU_API_TOKEN}}
playbooks:
  - name: h12-storm
    match: {{sev: [SEV2, SEV2.5], rule: [heroku-h12]}}
    triage:
      - name: health
        action: {{kind: http.check, url: "{service.base_url}/healthz", expect_status: 200}}
    remediation:
      name: restart web dynos
      action: {{kind: heroku.restart_dyno, app: raxx-prod, dyno: web}}
"""


def pressed(action_id: str, value: str, user: str, user_id: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def buttons(post: Any) -> dict[str, str]:
    return {
        e["action_id"]: e["value"]
        for b in post.blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
    }


async def audit(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The audit log, once the refused click's line is in it (the history commits it)."""
    with trio.fail_after(10):
        while True:
            rows: list[dict[str, Any]] = (
                await client.get("/api/v1/audit", headers={"authorization": f"Bearer {ROOT_TOKEN}"})
            ).json()["audit"]
            if any(r["event"] == "playbook_click_refused" for r in rows):
                return rows
            await trio.sleep(0.02)


async def wait_post(slack: FakeSlack, says: str) -> Any:
    with trio.fail_after(10):
        while True:
            found = [p for p in slack.posts if says in (p.text or "")]
            if found:
                return found[-1]
            await trio.sleep(0.02)


async def rewrites_of(slack: FakeSlack, ts: str | None, says: str) -> dict[str, Any]:
    """The newest ``chat.update`` of the message ``ts`` whose text says ``says``."""
    with trio.fail_after(10):
        while True:
            found = [
                c.body
                for c in slack.calls
                if c.method == "chat.update" and c.body.get("ts") == ts and c.error is None
            ]
            if found and says in found[-1]["text"]:
                return found[-1]
            await trio.sleep(0.02)


async def test_a_proposal_runs_only_after_a_slack_approval(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings = daemon_settings(
            tmp_path, fake_slack, config=config(heroku, service), HEROKU_API_TOKEN=heroku.token
        )
        daemon = await start_daemon(nursery, settings)
        base = f"http://127.0.0.1:{daemon.bound_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            body = fixture_body("event_alert_h12")
            opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
            assert opened.status_code == 202, opened.text
            first = await wait_post(fake_slack, "[SEV2")
            assert first.thread_ts is None
            assert "Playbook `h12-storm` matched" in json.dumps(first.blocks)
            checked = await wait_post(fake_slack, "Checked `health`")
            assert "ok, answered 200 as expected" in (checked.text or "")
            proposal = await wait_post(fake_slack, "proposes `restart web dynos`")
            assert proposal.thread_ts == first.ts == checked.thread_ts
            assert "DELETE" in (proposal.text or "")
            assert "/apps/raxx-prod/dynos/web" in (proposal.text or "")
            offered = buttons(proposal)
            assert set(offered) == {APPROVE_ACTION, REJECT_ACTION}
            assert heroku.calls == []  # proposed, not run

            unsigned = pressed(APPROVE_ACTION, offered[APPROVE_ACTION], "dana", "U0DANA")
            answer = await client.post("/slack/interactions", content=unsigned)
            assert answer.status_code == 401  # a forged click changes nothing

            signed = slack_headers(unsigned) | {"content-type": "application/x-www-form-urlencoded"}
            answer = await client.post("/slack/interactions", content=unsigned, headers=signed)
            assert answer.status_code == 200, answer.text
            [call] = await trio.to_thread.run_sync(heroku.wait_calls, 1)
            assert (call.method, call.path) == ("DELETE", "/apps/raxx-prod/dynos/web")
            assert call.headers["accept"] == HEROKU_ACCEPT
            assert call.headers["authorization"] == f"Bearer {heroku.token}"
            ran = await wait_post(fake_slack, "Ran `restart web dynos`")
            assert "ok, answered 202" in (ran.text or "")
            assert ran.thread_ts == first.ts
            approved = await wait_post(fake_slack, "approved by slack:dana (U0DANA)")
            assert "1 of 1 approval" in (approved.text or "")
            # the proposal itself is rewritten in place: who approved, no button left
            rewritten = await rewrites_of(fake_slack, proposal.ts, "ran at")
            assert "Approved by slack:dana (U0DANA)" in rewritten["text"]
            assert "ok, answered 202" in rewritten["text"]
            assert not [b for b in rewritten["blocks"] if b["type"] == "actions"]

            # a second press is refused: it ran once
            again = pressed(APPROVE_ACTION, offered[APPROVE_ACTION], "erin", "U0ERIN")
            signed = slack_headers(again) | {"content-type": "application/x-www-form-urlencoded"}
            await client.post("/slack/interactions", content=again, headers=signed)
            # the endpoint answers once the actor took the click: audited, not run
            events = [r["event"] for r in (await audit(client))]
            assert events.count("playbook_click_refused") == 1
            assert events.count("playbook_run_started") == 1
            assert len(heroku.calls) == 1
        every_post = json.dumps([p.to_json() for p in fake_slack.posts])
        assert heroku.token not in every_post
        daemon.request_stop()
