"""Slack answering after the client gave up: the post landed, and a retry must not post it
twice (the adversarial run saw 36 posts for 30 alerts). Real time, scaled down: Slack
answers after 0.6 s, the client gives up at 0.25 s."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import trio
from slack_sdk import WebClient

from actors.sinks.slack.deliver import METADATA_EVENT
from eyetok.clock import SystemClock
from eyetok.config import DeliveryOptions
from eyetok.messages import IncidentAction
from harness.peers.slack import FakeSlack
from state.history.store import HistoryStore
from tests.actors.slack_rig import slack_alert, start_rig

FAST = DeliveryOptions(max_age_s=60, base_backoff_s=0.1, max_backoff_s=0.4, breaker_cooldown_s=0.2)


def _delivery_ids(fake: FakeSlack) -> Counter[str]:
    return Counter(
        p.raw["metadata"]["event_payload"]["delivery_id"]
        for p in fake.posts
        if isinstance(p.raw.get("metadata"), dict)
    )


async def test_a_timed_out_post_that_landed_is_found_not_posted_again(
    nursery: trio.Nursery, store: HistoryStore, fake_slack: FakeSlack
) -> None:
    clock = SystemClock()
    rig = await start_rig(nursery, store, fake_slack, clock, options=FAST, timeout_s=0.25)
    now = datetime.now(UTC)
    opened = slack_alert("acme", 0, at=now)
    await rig.send(opened)
    await rig.until(lambda: opened.delivery_id in rig.outcomes(), within=10, every=0.05)

    fake_slack.slow_posts(0.6, for_s=3.0)
    reply = slack_alert(
        "acme", 0, at=now, action=IncidentAction.UPDATE, incident=opened.incident.incident_id
    )
    alerts = [slack_alert(t, n, at=now) for n in range(1, 4) for t in ("acme", "raxx")]
    await rig.send(reply, *alerts)
    everything = [opened, reply, *alerts]
    await rig.until(lambda: len(rig.finished) >= len(everything), within=30, every=0.05)
    await trio.sleep(1.0)  # a slow answer still in flight changes nothing

    assert rig.outcomes() == {d.delivery_id: ["delivered"] for d in everything}
    posted = _delivery_ids(fake_slack)
    assert posted == Counter({d.delivery_id: 1 for d in everything})  # none twice
    methods = Counter(c.method for c in fake_slack.calls)
    assert methods["conversations.history"] >= 1  # the timed-out top-level posts
    assert methods["conversations.replies"] >= 1  # the timed-out thread reply
    by_id = {
        p.raw["metadata"]["event_payload"]["delivery_id"]: p.ts
        for p in fake_slack.posts
        if isinstance(p.raw.get("metadata"), dict)
    }
    for finished in rig.finished:  # the recorded ts is the post's, found or answered
        assert finished.external_ref == by_id[finished.delivery_id]
    [thread_reply] = [p for p in fake_slack.posts if p.thread_ts]
    assert thread_reply.thread_ts == by_id[opened.delivery_id]


async def test_a_row_requeued_after_a_crash_is_not_posted_again_if_it_landed(
    nursery: trio.Nursery, store: HistoryStore, fake_slack: FakeSlack
) -> None:
    """The process before posted it, then died before recording it: the restarted sink
    finds it by its metadata and records it delivered with that ts; a row that never
    landed is posted."""
    before = datetime.now(UTC)
    landed = slack_alert("acme", 1, at=before)
    never = slack_alert("acme", 2, at=before)
    client = WebClient(token=fake_slack.token, base_url=fake_slack.base_url, retry_handlers=[])
    first = client.chat_postMessage(
        channel="#acme-alerts",
        text="[SEV1] acme alert 1",
        metadata={
            "event_type": METADATA_EVENT,
            "event_payload": {"delivery_id": landed.delivery_id},
        },
    )
    for n in range(250):  # a busy channel: the landed post is on the second page
        client.chat_postMessage(channel="#acme-alerts", text=f"chatter {n}")
    await trio.sleep(0.05)  # the restarted process starts after the rows were planned
    rig = await start_rig(nursery, store, fake_slack, SystemClock(), options=FAST)
    await rig.send(landed, never)
    await rig.until(lambda: len(rig.finished) == 2, within=15, every=0.05)

    assert rig.outcomes() == {landed.delivery_id: ["delivered"], never.delivery_id: ["delivered"]}
    assert _delivery_ids(fake_slack) == Counter({landed.delivery_id: 1, never.delivery_id: 1})
    histories = [c for c in fake_slack.calls if c.method == "conversations.history"]
    assert any(c.body.get("cursor") for c in histories)  # it turned the page
    [found] = [f for f in rig.finished if f.delivery_id == landed.delivery_id]
    assert found.external_ref == first["ts"]
    assert found.attempts == 1
