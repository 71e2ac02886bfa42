"""Slack outages under MockClock: retries run until the maximum age (never a count), and
the operator's notice of a dead delivery outlives the failure it reports."""

from __future__ import annotations

import structlog
import trio
import trio.testing

from eyetok.clock import TrioWallClock
from eyetok.config import DeliveryOptions
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import Scripted
from state.history.store import HistoryStore
from tests.actors.slack_rig import ANCHOR, OPERATOR_CHANNEL, slack_alert, start_rig


async def test_twenty_500s_then_ten_429s_deliver_every_alert_exactly_once(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake_slack: FakeSlack,
    mock_clock: trio.testing.MockClock,
) -> None:
    """The adversarial run's outage: 28 of 30 arrived, the first of each tenant's queue
    ended dead "after 8 attempts" in 137 s though the maximum age is 900 s."""
    clock = TrioWallClock(ANCHOR)
    fake_slack.fail_next(*[Scripted.server_error(500)] * 20, *[Scripted.rate_limited(4)] * 10)
    rig = await start_rig(nursery, store, fake_slack, clock, options=DeliveryOptions())
    alerts = [slack_alert(t, n, at=clock.now()) for n in range(15) for t in ("acme", "raxx")]
    await rig.send(*alerts)
    await rig.until(lambda: len(rig.finished) >= 30, within=900)
    await trio.sleep(60)  # nothing else is still on its way

    assert rig.outcomes() == {a.delivery_id: ["delivered"] for a in alerts}
    posts = fake_slack.posts
    # a SEV1 text line is "[SEV1] <title> · Emergency SOP: <link>" (the phone shows it)
    assert sorted((p.text or "").split(" · ")[0] for p in posts) == sorted(
        f"[SEV1] {a.incident.title}" for a in alerts
    )
    calls = [c for c in fake_slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in calls].count(500) == 20
    assert [c.status for c in calls].count(429) == 10
    assert not rig.planned  # nothing dead, so nothing to report
    # each lane's first alert took every failure its lane met: 30 failures and two
    # successes between them, one of them past the old cap of 8 attempts
    firsts = [
        f for f in rig.finished if f.delivery_id in (alerts[0].delivery_id, alerts[1].delivery_id)
    ]
    assert sum(f.attempts for f in firsts) == 32
    assert max(f.attempts for f in firsts) > 8
    assert max((f.finished_at - ANCHOR).total_seconds() for f in rig.finished) < 900
    assert rig.health.get("dead_deliveries").state == "ok"  # type: ignore[union-attr]


async def test_a_dead_delivery_is_reported_by_a_notice_that_outlives_the_outage(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake_slack: FakeSlack,
    mock_clock: trio.testing.MockClock,
) -> None:
    """acme's channel stays down past the maximum age: the delivery ends dead, logged at
    error level; the operator's channel is down too but for less than the notices'
    longer age, so the report arrives; until then /readyz's detail shows the dead one."""
    clock = TrioWallClock(ANCHOR)
    options = DeliveryOptions(max_age_s=900, notice_max_age_s=3600)
    fake_slack.take_down("#acme-alerts")
    fake_slack.take_down(OPERATOR_CHANNEL)
    rig = await start_rig(nursery, store, fake_slack, clock, options=options)
    alert = slack_alert("acme", 1, at=clock.now())
    with structlog.testing.capture_logs() as logs:
        await rig.send(alert)
        await rig.until(lambda: rig.outcomes().get(alert.delivery_id) == ["dead"], within=1000)
    [dead] = [f for f in rig.finished if f.delivery_id == alert.delivery_id]
    assert (dead.finished_at - ANCHOR).total_seconds() >= 900 - 60  # tried until its age
    assert "maximum age (900 s)" in dead.detail
    [line] = [e for e in logs if e["event"] == "delivery_dead"]
    assert line["log_level"] == "error"
    assert (line["tenant"], line["target"], line["incident_id"]) == (
        "acme",
        "#acme-alerts",
        alert.incident.incident_id,
    )
    assert "Slack answered HTTP 503" in line["detail"]
    [notice] = rig.planned
    assert notice.destination.target == OPERATOR_CHANNEL
    health = rig.health.get("dead_deliveries")
    assert health is not None
    assert health.state == "degraded"
    assert alert.delivery_id in health.detail

    await trio.sleep(1500)  # the operator's channel is still down, 1,500 s past the notice
    assert rig.outcomes().get(notice.delivery_id) is None  # still retrying, not dead
    fake_slack.bring_up(OPERATOR_CHANNEL)
    await rig.until(lambda: notice.delivery_id in rig.outcomes(), within=120)
    assert rig.outcomes()[notice.delivery_id] == ["delivered"]
    [report] = [p for p in fake_slack.posts if p.channel == OPERATOR_CHANNEL.lstrip("#")]
    assert "Delivery dead" in (report.text or "")
    assert alert.incident.incident_id in (report.text or "")
    health = rig.health.get("dead_deliveries")
    assert health is not None
    assert health.state == "ok"
