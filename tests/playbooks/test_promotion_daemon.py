"""Through the daemon: a SEV3 whose health check fails recommends SEV2; a human's
``Acknowledge escalation`` in Slack re-posts it in SEV2's channel, and from then on the
incident itself is SEV2 (the incidents actor's snapshot, journalled and audited
``incident_promoted``): its next repeat goes to the SEV2 thread, not to SEV3's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio

from eyetok.playbooks.posts import ACKNOWLEDGE_ESCALATION_ACTION
from harness.peers.platform import FakeService
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, fixture_body, signed_headers, start_daemon
from tests.playbooks.test_buttons_daemon import buttons, pressed, wait_post
from tests.verify import ROOT_TOKEN, slack_headers

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}


def config(service: FakeService) -> str:
    return f"""
playbooks:
  - name: warning-health
    match: {{sev: [SEV3], rule: [warning]}}
    triage:
      - name: health
        action: {{kind: http.check, url: "{service.base_url}/healthz", expect_status: 200}}
        escalate_if: {{to: SEV2, finding: [failed]}}
"""


async def test_repeats_follow_a_promoted_incident_to_the_louder_thread(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeService() as service:
        service.health = (503, {"status": "down"})
        daemon = await start_daemon(
            nursery, daemon_settings(tmp_path, fake_slack, config=config(service))
        )
        base = f"http://127.0.0.1:{daemon.bound_port}"
        body = fixture_body("event_alert_warning")
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
            assert opened.status_code == 202, opened.text
            quiet = await wait_post(fake_slack, "[SEV3")
            recommended = await wait_post(fake_slack, "escalation_recommended: SEV2")
            assert recommended.thread_ts == quiet.ts
            value = buttons(recommended)[ACKNOWLEDGE_ESCALATION_ACTION]

            click = pressed(ACKNOWLEDGE_ESCALATION_ACTION, value, "dana", "U0DANA")
            signed = slack_headers(click) | {"content-type": "application/x-www-form-urlencoded"}
            answer = await client.post("/slack/interactions", content=click, headers=signed)
            assert answer.status_code == 200, answer.text
            louder = await wait_post(fake_slack, "[SEV2")
            assert louder.thread_ts is None
            assert louder.channel != quiet.channel

            with trio.fail_after(10):  # the incidents actor moved it too
                while True:
                    rows = (await client.get("/api/v1/incidents", headers=AUTH)).json()
                    [row] = rows["incidents"]
                    if row["sev_channel"] == "SEV2":
                        break
                    await trio.sleep(0.02)
            audit = (await client.get("/api/v1/audit", headers=AUTH)).json()["audit"]
            [promoted] = [a for a in audit if a["event"] == "incident_promoted"]
            assert "now SEV2" in promoted["detail"]

            again = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
            assert again.status_code == 202, again.text
            repeat = await wait_post(fake_slack, "Seen again")
            assert repeat.thread_ts == louder.ts  # the SEV2 thread, not SEV3's
            assert repeat.channel == louder.channel
            assert not [
                p for p in fake_slack.posts if p.thread_ts == quiet.ts and "Seen" in (p.text or "")
            ]
        assert "U0ONCALL" not in json.dumps(quiet.blocks)
        daemon.request_stop()
