"""Talking to EyeTok in an incident's Slack thread: Slack (the events sender) posts signed
Events API callbacks to the daemon's ``/slack/events`` as it would, the daemon answers in
the thread through the fake Slack, and acts through the same paths as the buttons."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from eyetok.config import Settings
from eyetok.severity import Why, facts_of, why
from eyetok.sources import sentry
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.peers.slack_events import SlackEventsSender
from tests.verify import ROOT_TOKEN

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
SEV2_FIXTURE = "event_alert_error_new_unhandled_prod"


async def _open(client: httpx.AsyncClient, fixture: str) -> str:
    body = fixture_body(fixture)
    opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert opened.status_code == 202, opened.text
    incident_id: str = opened.json()["incident_id"]
    return incident_id


async def _incident(client: httpx.AsyncClient, incident_id: str) -> dict[str, Any]:
    listed = (await client.get("/api/v1/incidents", headers=AUTH)).json()["incidents"]
    return next(i for i in listed if i["incident_id"] == incident_id)


async def _audit(client: httpx.AsyncClient, event: str) -> list[dict[str, Any]]:
    rows = await client.get("/api/v1/audit", params={"event": event}, headers=AUTH)
    audit: list[dict[str, Any]] = rows.json()["audit"]
    return audit


def _replies(slack: FakeSlack, thread_ts: str) -> list[SlackPost]:
    return [p for p in slack.posts if p.thread_ts == thread_ts]


async def _answer(slack: FakeSlack, thread_ts: str, before: int) -> SlackPost:
    """The next reply EyeTok posts in the thread (after ``before`` replies)."""
    with trio.fail_after(10):
        while len(_replies(slack, thread_ts)) <= before:  # noqa: ASYNC110 - a peer's record
            await trio.sleep(0.02)
    return _replies(slack, thread_ts)[before]


async def test_the_thread_verbs(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_user("U0DANA", "dana")  # users.info names her; U0NEW it does not
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    slack = SlackEventsSender(f"{base}/slack/events")
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        incident_id = await _open(client, SEV2_FIXTURE)
        [first] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        thread, channel = first.ts, "C0SEV2CHAN"

        async def say(text: str) -> str:
            """Reply ``text`` in the thread; EyeTok's answer in it."""
            before = len(_replies(fake_slack, thread))
            event = slack.reply(text, thread_ts=thread, channel=channel)
            sent = await slack.send(client, slack.envelope(event))
            assert sent.status_code == 200, sent.text
            posted = await _answer(fake_slack, thread, before)
            assert posted.text is not None
            return posted.text

        # a forged or stale callback is refused and changes nothing
        ack = slack.envelope(slack.reply("ack", thread_ts=thread, channel=channel))
        forged = await slack.send(client, ack, signature="v0=" + "0" * 64)
        assert forged.status_code == 401
        stale = await slack.send(client, ack, timestamp=1_000_000_000)
        assert stale.status_code == 401

        # why: the decision of the stored signal, judged again at its receipt time
        incident = await _incident(client, incident_id)
        answer = await say("<@U0EYETOKBOT> why?")
        expected = _expected_why(daemon.settings, incident)
        assert f"Routed by rule `{incident['rule']}` (high -> {incident['sev_channel']})" in answer
        assert expected.rule == incident["rule"] == "error-new-unhandled-production"
        for held in expected.held:
            assert held in answer
        assert {"fatal", "paper-gate-breach"} <= {m.rule for m in expected.louder_misses}
        for miss in expected.louder_misses:
            assert f"`{miss.rule}` ({miss.severity.value}): {miss.failed}" in answer
        business = incident["sev_channel"] == "SEV2.5"
        assert ("inside business hours" if business else "outside business hours") in answer
        assert "America/New_York" in answer

        status = await say("status")
        assert f"`{incident_id}` is *open*" in status
        nonsense = await say("please fix it")
        assert nonsense.startswith("I understand `ack`, `resolve`, `why`")

        # our own posts and edits are not commands
        for extra in ({"bot_id": "B0EYETOK"}, {"subtype": "message_changed"}):
            event = slack.reply("ack", thread_ts=thread, channel=channel, **extra)
            assert (await slack.send(client, slack.envelope(event))).status_code == 200
        assert (await _incident(client, incident_id))["status"] == "open"

        # ack, retried by Slack, and the same message's app_mention: one acknowledgement
        before = len(_replies(fake_slack, thread))
        assert (await slack.send(client, ack)).status_code == 200
        assert (await slack.send(client, ack, retry=1)).status_code == 200
        mention = slack.envelope(ack["event"] | {"type": "app_mention"})
        assert (await slack.send(client, mention)).status_code == 200
        acked = await _answer(fake_slack, thread, before)
        assert acked.text is not None
        assert acked.text.startswith("Acknowledged by slack:dana (U0DANA)")

        async def acknowledged() -> bool:
            return (await _incident(client, incident_id))["status"] == "acknowledged"

        await eventually(acknowledged)
        assert len(await _audit(client, "incident_acknowledged")) == 1
        again = await say("ack")
        assert again.startswith("Already acknowledged by slack:dana (U0DANA)")
        verbs = [json.loads(r["detail"]) for r in await _audit(client, "thread_verb")]
        assert [v["verb"] for v in verbs].count("ack") == 2  # the first and the "already"

        # mute: the tenant's next (non-SEV1) delivery is recorded muted, not sent; SEV1 pages
        muted = await say("mute 1h")
        assert muted.startswith("Muted tenant `operator` until")
        posts_before = len(fake_slack.posts)
        warning_id = await _open(client, "event_alert_warning")

        async def muted_row() -> bool:
            rows = (await client.get("/api/v1/notifications", headers=AUTH)).json()
            return any(
                n["incident_id"] == warning_id and n["status"] == "muted"
                for n in rows["notifications"]
            )

        await eventually(muted_row)
        fatal_id = await _open(client, "event_alert_fatal")
        [*_, page] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, posts_before + 1)
        assert page.channel == "raxx-ops-alert-SEV1"
        assert fatal_id in json.dumps(page.blocks)
        assert not any(warning_id in json.dumps(p.blocks) for p in fake_slack.posts)
        [mute] = await _audit(client, "tenant_muted")
        assert json.loads(mute["detail"])["by"] == "slack:dana (U0DANA)"

        # status says the tenant is muted; unmute ends it (audited), and says so twice
        status = await say("status")
        assert "Tenant `operator` is muted by slack:dana (U0DANA) until" in status
        unmuted = await say("unmute")
        assert unmuted.startswith("Unmuted tenant `operator` (muted by slack:dana (U0DANA)")
        [ended] = await _audit(client, "tenant_unmuted")
        assert "ended early by slack:dana (U0DANA)" in ended["detail"]
        assert "is muted" not in await say("status")
        assert await say("unmute") == "Tenant `operator` is not muted: nothing to unmute."

        # resolve: the operator path; the thread says who; a second resolve says so
        resolved = await say("resolve")
        assert resolved.startswith("Resolved by slack:dana (U0DANA) at")
        final = await _incident(client, incident_id)
        assert final["status"] == "resolved"
        assert final["resolved_by"] == "slack:dana (U0DANA)"
        twice = await say("resolve")
        assert twice == f"`{incident_id}` is not open: nothing to resolve."
        # her name was asked of Slack once (users.info), then kept
        asked = [c.body.get("user") for c in fake_slack.calls if c.method == "users.info"]
        assert asked.count("U0DANA") == 1
        # a member Slack cannot name is audited by user id
        before = len(_replies(fake_slack, thread))
        event = slack.reply("status", thread_ts=thread, channel=channel, user="U0NEW")
        assert (await slack.send(client, slack.envelope(event))).status_code == 200
        await _answer(fake_slack, thread, before)
        verbs = [json.loads(r["detail"]) for r in await _audit(client, "thread_verb")]
        assert verbs[-1]["by"] == "slack:U0NEW"
    daemon.request_stop()


def _expected_why(settings: Settings, incident: dict[str, Any]) -> Why:
    """The canonical table's verdict on the incident's signal, computed here from the
    fixture as the hook normalised it, at the time the daemon received it."""
    signal = sentry.normalise(
        fixture_body(SEV2_FIXTURE),
        "event_alert",
        tenant="operator",
        signal_id="expected",
        received_at=datetime.fromisoformat(incident["opened_at"]),
        recognisers=settings.recognisers,
    )
    return why(facts_of(signal, known=False))


async def test_the_operator_api_resolves_as_the_thread_does(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        incident_id = await _open(client, "event_alert_fatal")
        [first] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        path = f"/api/v1/incidents/{incident_id}/resolve"
        assert (await client.post(path, json={"by": "sam"})).status_code == 401
        nobody = await client.post(path, headers=AUTH)
        assert nobody.status_code == 400
        assert nobody.json()["error"] == 'say who resolves: a JSON body {"by": "name"}'
        unknown = await client.post(
            "/api/v1/incidents/inc_nope/resolve", json={"by": "sam"}, headers=AUTH
        )
        assert unknown.status_code == 404
        resolved = await client.post(path, json={"by": "sam"}, headers=AUTH)
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["incident"]["resolved_by"] == "sam"
        reply = await _answer(fake_slack, first.ts, 0)
        assert reply.text is not None
        assert reply.text.startswith("Resolved by sam at")
        # a second resolve finds nothing open
        again = await client.post(path, json={"by": "kim"}, headers=AUTH)
        assert again.status_code == 404
        [audit] = await _audit(client, "resolved_by_human")
        assert audit["detail"].startswith("resolved by sam; told: slack #raxx-ops-alert-SEV1")
    daemon.request_stop()
