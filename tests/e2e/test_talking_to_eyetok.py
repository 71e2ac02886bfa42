"""The digest reader and the thread verbs through ``eyetok run`` as a subprocess: a
cluster notice nobody acknowledges goes once to the operator's secondary (a short
``digest_escalate_s``), and not again after a kill -9; Slack's signed events in a SEV1's
thread get ``why`` answered and ``ack`` acted on once, though Slack retries it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.http.test_budgets_and_suppression import HOOK_TOKEN, _verdict
from tests.http.test_slack_interactions import CONFIG as CLUSTER_CONFIG
from tests.peers.slack_events import SlackEventsSender
from tests.verify import ROOT_TOKEN, tenant_slack_token

# the cluster test's tenants and sinks; the operator escalates to a secondary after 2 s
CONFIG = CLUSTER_CONFIG.replace(
    "  operator: {tier: operator}\n",
    "  operator:\n    tier: operator\n    escalation:\n"
    '      secondary: {sink: slack, target: "#oncall-secondary"}\n'
    "      digest_escalate_s: 2\n",
)


def _env(slack: FakeSlack, config: Path) -> dict[str, str]:
    return {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_CONFIG": str(config),
        "HOOK_TOKEN": HOOK_TOKEN,
        "T1_SLACK_TOKEN": tenant_slack_token(slack, "t1"),
        "T2_SLACK_TOKEN": tenant_slack_token(slack, "t2"),
    }


def _wait(what: str, done: object, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if done():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")


def _in(slack: FakeSlack, channel: str) -> list[SlackPost]:
    return [p for p in slack.posts if p.channel == channel]


def test_digest_escalation_and_thread_verbs(tmp_path: Path, fake_slack: FakeSlack) -> None:
    assert "digest_escalate_s: 2" in CONFIG
    config = tmp_path / "eyetok.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    env = _env(fake_slack, config)
    with DaemonProcess(tmp_path / "data", env) as daemon:
        daemon.verify_slack()
        for tenant in ("t1", "t2"):
            answer = httpx.post(
                f"{daemon.url}/hooks/probe/{tenant}",
                content=_verdict(f"{tenant}.registry.example"),
                headers={
                    "content-type": "application/json",
                    "authorization": f"Bearer {HOOK_TOKEN}",
                },
                timeout=15.0,
            )
            assert answer.status_code == 202, answer.text
        _wait("the cluster notice", lambda: _in(fake_slack, "eyetok-operator"))
        [notice] = _in(fake_slack, "eyetok-operator")
        assert "cluster:" in json.dumps(notice.blocks)
        _wait("the escalation", lambda: _in(fake_slack, "oncall-secondary"))
        [escalated] = _in(fake_slack, "oncall-secondary")
        assert escalated.text is not None
        assert "nobody acknowledged the suppression cluster notice" in escalated.text
        daemon.kill()  # kill -9: the escalation must not come again
    with DaemonProcess(tmp_path / "data", env) as daemon:
        time.sleep(3)  # longer than the window and a dozen looks for digests
        assert len(_in(fake_slack, "oncall-secondary")) == 1

        body = (FIXTURES / "event_alert_fatal.json").read_bytes()
        opened = daemon.post_sentry(body, "event_alert", SECRET)
        assert opened.status_code == 202, opened.text
        incident_id = opened.json()["incident_id"]
        _wait("the SEV1 post", lambda: _in(fake_slack, "raxx-ops-alert-SEV1"))
        [first] = _in(fake_slack, "raxx-ops-alert-SEV1")
        slack = SlackEventsSender(f"{daemon.url}/slack/events")

        def thread() -> list[SlackPost]:
            return [p for p in fake_slack.posts if p.thread_ts == first.ts]

        why = slack.envelope(slack.reply("why", thread_ts=first.ts, channel="C0SEV1CHAN"))
        assert slack.send_sync(why).status_code == 200
        _wait("the answer to why", lambda: len(thread()) == 1)
        assert (thread()[0].text or "").startswith("Routed by rule `fatal` (critical -> SEV1)")

        ack = slack.envelope(slack.reply("ack", thread_ts=first.ts, channel="C0SEV1CHAN"))
        for retry in (0, 1, 2):  # Slack retrying a delivery it thinks failed
            assert slack.send_sync(ack, retry=retry).status_code == 200
        _wait("the acknowledgement", lambda: len(thread()) == 2)
        assert (thread()[1].text or "").startswith("Acknowledged by slack:U0DANA")
        audit = httpx.get(
            f"{daemon.url}/api/v1/audit",
            params={"event": "incident_acknowledged"},
            headers={"authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=15.0,
        ).json()["audit"]
        assert [row["incident_id"] for row in audit] == [incident_id]
        time.sleep(1)
        assert len(thread()) == 2
        assert daemon.terminate()[0] == 0
    escalations = [line for line in daemon.logs if line.get("event") == "digest_not_acknowledged"]
    assert escalations == []  # the second life escalated nothing (the first did, once)
