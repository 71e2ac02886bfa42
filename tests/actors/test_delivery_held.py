"""Deliveries to a sink not yet verified are held, not ended (design section 6): sent late
once the handshake passes, refused only past ``delivery.unverified_hold_s``."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import structlog
import trio
import trio.testing

from eyetok.clock import TrioWallClock
from eyetok.config import DeliveryOptions
from eyetok.messages import Destination
from harness.peers.slack import FakeSlack
from state.history.store import HistoryStore
from tests.actors.slack_rig import ANCHOR, OPERATOR_CHANNEL, slack_alert, start_rig
from tests.conftest import daemon_settings, fixture_body, signed_headers, start_daemon
from tests.verify import ROOT_TOKEN, verify_slack


async def test_a_sev1_before_the_handshake_goes_out_late_once_the_sink_is_verified(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake_slack: FakeSlack,
    mock_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    rig = await start_rig(
        nursery, store, fake_slack, clock, options=DeliveryOptions(), verified=False
    )
    first = slack_alert("acme", 1, at=clock.now())
    await rig.send(first)
    await trio.sleep(12 * 60)
    second = slack_alert("acme", 2, at=clock.now())
    await rig.send(second)
    await trio.sleep(1)

    assert fake_slack.posts == []
    assert rig.finished == []  # held, not ended
    held = rig.board.held("slack")
    assert held is not None
    assert (held.count, held.oldest) == (2, ANCHOR)
    health = rig.health.get("held_unverified")
    assert health is not None
    assert health.state == "degraded"
    assert "slack: 2 held" in health.detail
    audited = [a for a in rig.audits if a.event == "delivery_held_unverified"]
    assert [a.incident_id for a in audited] == ["inc_acme_1", "inc_acme_2"]

    await rig.verify()
    await rig.until(lambda: len(rig.finished) == 2, within=60)
    assert rig.outcomes() == {first.delivery_id: ["delivered"], second.delivery_id: ["delivered"]}
    late, later = fake_slack.posts  # in order
    assert "acme alert 1" in (late.text or "")
    assert "delayed 12 min: sink `slack` was awaiting verification" in (late.text or "")
    assert any("delayed 12 min" in str(b) for b in late.blocks or [])
    assert "acme alert 2" in (later.text or "")
    assert "delayed" in (later.text or "")  # it waited behind the first, also held
    assert rig.board.held("slack") is None
    health = rig.health.get("held_unverified")
    assert health is not None
    assert health.state == "ok"


async def test_held_past_the_maximum_hold_ends_refused_unverified_and_is_reported(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake_slack: FakeSlack,
    mock_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    options = DeliveryOptions(unverified_hold_s=3600)
    rig = await start_rig(nursery, store, fake_slack, clock, options=options, verified=False)
    old = slack_alert("acme", 1, at=clock.now())
    await rig.send(old)
    await trio.sleep(50 * 60)
    young = slack_alert("acme", 2, at=clock.now())
    await rig.send(young)
    with structlog.testing.capture_logs() as logs:
        await rig.until(lambda: old.delivery_id in rig.outcomes(), within=15 * 60)

    [refused] = rig.finished
    assert refused.outcome == "refused_unverified"
    assert (refused.finished_at - ANCHOR).total_seconds() >= 3600
    assert "held 1 h, the maximum" in refused.detail
    [line] = [e for e in logs if e["event"] == "delivery_refused_unverified"]
    assert line["log_level"] == "error"
    assert (line["delivery_id"], line["target"]) == (old.delivery_id, "#acme-alerts")
    # the operator's notices go through the same unverified sink: no report held there
    assert not [d for d in rig.planned if d.destination.target == OPERATOR_CHANNEL]

    await rig.verify()  # the younger one goes out, late
    await rig.until(lambda: young.delivery_id in rig.outcomes(), within=60)
    assert rig.outcomes()[young.delivery_id] == ["delivered"]
    [post] = fake_slack.posts
    assert "acme alert 2" in (post.text or "")
    assert "delayed 10 min" in (post.text or "")  # planned at 50 min, sent at 60


async def test_a_refusal_is_reported_through_a_verified_notices_sink(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake_slack: FakeSlack,
    mock_clock: trio.testing.MockClock,
) -> None:
    """A sink that expired (its verification is old) while the operator's is live: the
    delivery held past the maximum is refused and the operator gets the report."""
    clock = TrioWallClock(ANCHOR)
    options = DeliveryOptions(unverified_hold_s=600)
    rig = await start_rig(
        nursery, store, fake_slack, clock, options=options, sink_ids=("slack", "acme-slack")
    )  # "slack" (the operator's notices) is live, "acme-slack" never verified
    hook = msgspec.structs.replace(
        slack_alert("acme", 1, at=clock.now()),
        destination=Destination(sink_id="acme-slack", sink_type="slack", target="#acme"),
    )
    await rig.send(hook)
    await rig.until(lambda: len(rig.planned) == 1, within=15 * 60)
    assert rig.outcomes()[hook.delivery_id] == ["refused_unverified"]
    [report] = rig.planned
    assert report.destination.target == OPERATOR_CHANNEL
    assert report.notice is not None
    assert "Delivery refused" in report.notice
    assert hook.incident.incident_id in report.notice
    await rig.until(lambda: report.delivery_id in rig.outcomes(), within=60)
    [posted] = fake_slack.posts
    assert posted.channel == OPERATOR_CHANNEL.lstrip("#")


async def test_held_deliveries_survive_a_restart_and_are_listed_with_the_unverified_sink(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Through the whole daemon: a SEV1 before the handshake is held (a pending outbox
    row), `/api/v1/sinks` lists the never-verified sink with it, a restart holds it
    again, and the handshake sends it, marked late."""
    settings = daemon_settings(tmp_path / "data", fake_slack)
    auth = {"authorization": f"Bearer {ROOT_TOKEN}"}

    async def listing(port: int | None) -> dict[str, object]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            rows = (await client.get("/api/v1/sinks", headers=auth)).json()["sinks"]
        [slack] = [r for r in rows if r["sink_id"] == "slack"]
        assert isinstance(slack, dict)
        return slack

    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, settings, verify=())
        body = fixture_body("event_alert_fatal")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
            answer = await c.post("/hooks/sentry", content=body, headers=signed_headers(body))
        assert answer.status_code == 202
        with trio.fail_after(10):
            while (await listing(daemon.bound_port))["held_unverified"] != 1:  # noqa: ASYNC110
                await trio.sleep(0.05)
        slack = await listing(daemon.bound_port)
        assert (slack["status"], slack["deliverable"]) == ("unverified", False)
        daemon.request_stop()

    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, settings, verify=())
        with trio.fail_after(10):
            while (await listing(daemon.bound_port))["held_unverified"] != 1:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert fake_slack.posts == []
        await verify_slack(f"http://127.0.0.1:{daemon.bound_port}", "slack")
        [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        assert post.channel == "raxx-ops-alert-SEV1"
        assert "awaiting verification" in (post.text or "")
        assert (await listing(daemon.bound_port))["held_unverified"] == 0
        daemon.request_stop()
