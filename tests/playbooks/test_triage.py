"""SEV3: the matching playbook's read-only checks run by themselves (a fake Sentry API and
a health endpoint on 127.0.0.1) and the thread says what was checked and found, pinging
nobody; a failing check recommends an escalation that only a recorded human
acknowledgement turns into a louder post."""

from __future__ import annotations

from pathlib import Path

import trio

from eyetok.config import Settings
from eyetok.messages import IncidentAction, SevChannel
from harness.peers.platform import FakeSentry, FakeService
from tests.conftest import daemon_settings
from tests.playbooks.rig import Rig, change, incident

CONFIG = """
integrations:
  sentry: {{api_url: "{sentry}", token_env: SENTRY_API_TOKEN}}
tenants:
  operator:
    tier: operator
    policy:
      routes:
        SEV1: [{{sink: slack, target: "#sev1"}}, {{sink: pd, target: "rk"}}]
        SEV2: [{{sink: slack, target: "#sev2"}}, {{sink: pd, target: "rk"}}]
        SEV2.5: [{{sink: slack, target: "#sev2"}}]
        SEV3: [{{sink: slack, target: "#sev3"}}]
sinks:
  slack: {{type: slack, tenant: operator}}
  pd: {{type: pagerduty, tenant: operator, routing_key_env: PD_KEY}}
playbooks:
  - name: raxx-health
    match: {{sev: [SEV3], tags: {{app: raxx-prod}}, source: [sentry]}}
    triage:
      - name: latest event
        action: {{kind: sentry.latest_event}}
      - name: health
        action: {{kind: http.check, url: "{service}/healthz", expect_json: {{path: status, equals: ok}}}}
        escalate_if: {{to: SEV2}}
"""  # noqa: E501

TAGS = (("app", "raxx-prod"),)


def settings_for(tmp_path: Path, sentry: FakeSentry, service: FakeService) -> Settings:
    config = CONFIG.format(sentry=sentry.base_url, service=service.base_url)
    return daemon_settings(tmp_path, None, config=config, SENTRY_API_TOKEN=sentry.token)


async def test_sev3_triage_runs_and_posts_without_pinging_anyone(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeSentry(issues=("6120480017",)) as sentry, FakeService() as service:
        rig = Rig(settings_for(tmp_path, sentry, service), tmp_path / "playbooks.jsonl")
        await rig.start(nursery)
        opened = incident("inc_warn", channel=SevChannel.SEV3, rule="warning", title="Retry")
        await rig.tell(change(opened, tags=TAGS))
        # the audit lines and the thread posts are separate sends: wait for all of them
        await rig.until(
            lambda: (
                rig.audited("playbook_triage_ran") == 2
                and sum("Checked `" in p for p in rig.posts) == 2
            )
        )
        [latest] = sentry.calls
        assert (latest.method, latest.path) == ("GET", "/api/0/issues/6120480017/events/latest/")
        assert latest.headers["authorization"] == f"Bearer {sentry.token}"
        assert [c.path for c in service.calls] == ["/healthz"]
        posts = rig.posts
        assert any(
            "Checked `latest event`" in p and "latest event 9fac2ceed9344f2bbfdd1fdacb0ed9b1" in p
            for p in posts
        )
        assert any("Checked `health`" in p and "ok, answered 200 as expected" in p for p in posts)
        assert all("<@" not in p for p in posts)  # nobody is mentioned
        destinations = {(d.destination.sink_type, d.destination.target) for d in rig.deliveries}
        assert destinations == {("slack", "#sev3")}  # no PagerDuty, no louder channel
        assert not any("escalation_recommended" in p for p in posts)
        assert sentry.token not in str(rig.history)

        # an incident no playbook matches (no app tag) is not triaged
        await rig.tell(change(incident("inc_other", channel=SevChannel.SEV3, rule="warning")))
        await rig.settle()
        assert len(sentry.calls) == 1


async def test_a_failing_check_recommends_and_only_a_human_ack_promotes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeSentry(issues=("6120480017",)) as sentry, FakeService() as service:
        service.health = (200, {"status": "degraded"})
        settings = settings_for(tmp_path, sentry, service)
        ledger = tmp_path / "playbooks.jsonl"
        rig = Rig(settings, ledger)
        await rig.start(nursery)
        opened = incident("inc_warn", channel=SevChannel.SEV3, rule="warning", title="Retry")
        await rig.tell(change(opened, tags=TAGS))
        # the audit line and the thread post are separate sends: wait for both
        await rig.until(
            lambda: (
                rig.audited("playbook_escalation_recommended")
                and any(d.post and d.post.buttons for d in rig.deliveries)
            )
        )
        recommended = [d for d in rig.deliveries if d.post and d.post.buttons]
        [post] = recommended
        assert post.post is not None
        assert post.post.text.startswith(":arrow_double_up: `escalation_recommended: SEV2`")
        assert 'status is "degraded", expected "ok"' in post.post.text
        assert [b.value for b in post.post.buttons] == ["incident:inc_warn"]
        assert post.destination.target == "#sev3"
        assert all(d.incident.sev_channel is SevChannel.SEV3 for d in rig.deliveries)

        # EyeTok itself cannot acknowledge; a restart does not promote either
        said = await rig.click("acknowledge_escalation", "inc_warn", "eyetok:playbook:raxx")
        assert said == "an escalation is acknowledged by a human"
        rig.kill()
        rig = Rig(settings, ledger)
        await rig.start(nursery)
        await rig.settle()
        assert rig.deliveries == []

        said = await rig.click("acknowledge_escalation", "inc_warn", "slack:dana (U0DANA)")
        assert said == "escalated to SEV2 by slack:dana (U0DANA)"
        louder = [d for d in rig.deliveries if d.action is IncidentAction.OPEN]
        assert {(d.destination.sink_type, d.destination.target) for d in louder} == {
            ("slack", "#sev2"),
            ("pagerduty", "rk"),
        }
        assert all(d.incident.sev_channel is SevChannel.SEV2 for d in louder)
        assert any("Escalation to SEV2 acknowledged by slack:dana" in p for p in rig.posts)
        # the recommendation's own post is rewritten: who acknowledged, no button left
        acknowledged, promoted = [d.rewrite for d in rig.deliveries if d.rewrite is not None]
        assert acknowledged.delivery_id == promoted.delivery_id == post.delivery_id
        assert "Acknowledged by slack:dana (U0DANA) at" in acknowledged.text
        assert "re-posted in SEV2's channel" in promoted.text
        assert acknowledged.buttons == promoted.buttons == ()
        events = [a.event for a in rig.audits]
        assert events.index("playbook_escalation_acknowledged") < events.index("playbook_promoted")
        again = await rig.click("acknowledge_escalation", "inc_warn", "slack:erin (U0ERIN)")
        assert again == "acknowledged already by slack:dana (U0DANA)"
        assert len([d for d in rig.deliveries if d.action is IncidentAction.OPEN]) == 2


async def test_a_louder_repeat_of_a_sev3_recommends_and_waits_for_a_human(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeSentry() as sentry, FakeService() as service:
        rig = Rig(settings_for(tmp_path, sentry, service), tmp_path / "playbooks.jsonl")
        await rig.start(nursery)
        repeat = incident(
            "inc_rep", channel=SevChannel.SEV3, rule="warning", recommended=SevChannel.SEV1
        )
        await rig.tell(change(repeat, IncidentAction.UPDATE))
        await rig.settle()
        [post] = rig.posts
        assert "`escalation_recommended: SEV1`" in post
        assert all(d.incident.sev_channel is SevChannel.SEV3 for d in rig.deliveries)
        said = await rig.click("acknowledge_escalation", "inc_rep", "slack:dana (U0DANA)")
        assert said == "escalated to SEV1 by slack:dana (U0DANA)"
        assert {d.destination.target for d in rig.deliveries if d.incident.sev_channel} >= {
            "#sev1",
            "rk",
        }
