"""The digest reader and the thread verbs through ``eyetok run`` as a subprocess: a
cluster notice nobody acknowledges goes once to the operator's secondary (a short
``digest_escalate_s``), and not again after a kill -9; Slack's signed events in a SEV1's
thread get ``why`` answered and ``ack`` acted on once, though Slack retries it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.peers.slack import FakeSlack, SlackPost
from tests.peers.slack_events import SlackEventsSender
from tests.verify import ROOT_TOKEN, tenant_slack_token

HOOK_TOKEN = "tenant-hook-token-e2e"
CONFIG = """
suppression: {hold_s: 0.3, quiet_s: 30, min_tenants: 2, min_share: 0.5}
tenants:
  operator:
    tier: operator
    escalation: {secondary: {sink: slack, target: "#oncall-secondary"}, digest_escalate_s: 2}
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


def _verdict(tenant: str) -> bytes:
    return json.dumps(
        {
            "server": f"{tenant}.registry.example",
            "verdict": "down",
            "error_kind": "tls_handshake",
            "asn": 13335,
            "registry": "npm",
            "region": "us-east-1",
            "observed_at": "2026-11-24T15:00:00Z",
        }
    ).encode()


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
    config = tmp_path / "eyetok.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    env = _env(fake_slack, config)
    with DaemonProcess(tmp_path / "data", env) as daemon:
        daemon.verify_slack()
        for tenant in ("t1", "t2"):
            answer = httpx.post(
                f"{daemon.url}/hooks/probe/{tenant}",
                content=_verdict(tenant),
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
