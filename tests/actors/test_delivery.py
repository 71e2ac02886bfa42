"""The delivery discipline, end to end through the in-process daemon and the fake Slack."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from actors.daemon import Daemon
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import Scripted
from tests.conftest import daemon_settings, fixture_body, signed_headers, start_daemon

FAST_RETRIES = """
delivery:
  max_age_s: 2.0
  base_backoff_s: 0.05
  max_backoff_s: 0.2
  breaker_threshold: 3
  breaker_cooldown_s: 0.1
"""


async def _post(daemon: Daemon, fixture: str) -> dict[str, str]:
    body = fixture_body(fixture)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
        response = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert response.status_code == 202, response.text
    answer: dict[str, str] = response.json()
    return answer


async def _notification(daemon: Daemon, incident_id: str) -> tuple[object, ...]:
    assert daemon.store is not None
    with trio.fail_after(15):
        while True:
            rows = await daemon.store.read(
                lambda con: con.execute(
                    "SELECT status, attempts, detail, latency_ms FROM notifications "
                    "WHERE incident_id = ? AND status <> 'pending'",
                    [incident_id],
                ).fetchall()
            )
            if rows:
                return tuple(rows[0])
            await trio.sleep(0.05)


async def test_500_then_429_then_200_arrives_once_after_the_retry_after(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(Scripted.server_error(500), Scripted.rate_limited(1))
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    answer = await _post(daemon, "event_alert_fatal")
    [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
    status, attempts, detail, latency_ms = await _notification(daemon, answer["incident_id"])
    assert (status, attempts, detail) == ("delivered", 3, "")
    assert isinstance(latency_ms, float)
    assert latency_ms >= 1000.0  # the 429 asked for one second
    calls = [c for c in fake_slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in calls] == [500, 429, 200]
    assert calls[2].at - calls[1].at >= 1.0
    assert len(fake_slack.posts) == 1
    assert post.channel == "raxx-ops-alert-SEV1"
    daemon.request_stop()


async def test_a_permanent_slack_error_is_refused_without_retries(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(Scripted.slack_error("channel_not_found"))
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    answer = await _post(daemon, "event_alert_fatal")
    status, attempts, detail, _ = await _notification(daemon, answer["incident_id"])
    assert (status, attempts) == ("refused", 1)
    assert "channel_not_found" in str(detail)
    daemon.request_stop()


async def test_a_destination_down_past_the_maximum_age_ends_dead_and_the_operator_is_told(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.take_down("raxx-ops-alert-SEV1")
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack, config=FAST_RETRIES))
    dead = await _post(daemon, "event_alert_fatal")  # SEV1: down
    fine = await _post(daemon, "event_alert_warning")  # SEV3: up
    # The SEV3 post is not held up behind the dead SEV1 channel.
    [first] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
    assert first.channel == "raxx-ops-alert-SEV3"
    assert fine["incident_id"] in str(first.blocks)
    status, attempts, detail, _ = await _notification(daemon, dead["incident_id"])
    assert status == "dead"
    assert isinstance(attempts, int)
    assert attempts >= 2
    assert "gave up" in str(detail)
    _, notice = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
    assert notice.channel == "eyetok-operator"
    assert "Delivery dead" in notice.text
    assert dead["incident_id"] in notice.text
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    audit = await daemon.store.read(
        lambda con: con.execute(
            "SELECT event FROM audit_log WHERE incident_id = ?", [dead["incident_id"]]
        ).fetchall()
    )
    assert ("delivery_dead",) in audit
    daemon.request_stop()


async def test_repeats_waiting_on_a_lane_become_one_thread_reply(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """At Slack's one-per-second pace, ten quick repeats do not become ten replies."""
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    opened = await _post(daemon, "event_alert_fatal")
    for _ in range(10):
        await _post(daemon, "event_alert_fatal")
    top, reply, *_ = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
    assert reply.thread_ts == top.ts
    assert daemon.store is not None
    with trio.fail_after(10):
        while True:
            rows = await daemon.store.read(
                lambda con: con.execute(
                    "SELECT status, external_ref FROM notifications WHERE incident_id = ? "
                    "AND action = 'update'",
                    [opened["incident_id"]],
                ).fetchall()
            )
            if rows and all(status == "delivered" for status, _ in rows):
                break
            await trio.sleep(0.05)
    assert len(rows) == 10
    replies = [p for p in fake_slack.posts if p.thread_ts == top.ts]
    assert len(replies) < 10
    assert "11 events" in replies[-1].text
    daemon.request_stop()


def test_lanes_keep_each_incident_in_order_and_spread_incidents_where_they_may() -> None:
    from datetime import UTC, datetime

    from actors.delivery import PARALLEL_SHARDS, lane_key
    from eyetok.messages import Deliver, Destination, Incident, IncidentAction, Severity

    class _Sink:
        def __init__(self, *, threads: bool, rate: float | None) -> None:
            self._threads, self.rate_per_target = threads, rate

        def threads(self) -> bool:
            return self._threads

    at = datetime(2026, 11, 24, tzinfo=UTC)

    def deliver(incident_id: str, sink_type: str) -> Deliver:
        incident = Incident(
            incident_id=incident_id,
            tenant="acme",
            dedup_key="1",
            title="t",
            severity=Severity.HIGH,
            sev_channel=None,
            rule="r",
            status="open",
            opened_at=at,
            last_seen_at=at,
            event_count=1,
        )
        return Deliver(
            delivery_id="d-" + incident_id,
            tenant="acme",
            destination=Destination(sink_id="s", sink_type=sink_type, target="t"),
            incident=incident,
            action=IncidentAction.OPEN,
            rule="r",
            planned_at=at,
            received_at=at,
        )

    hook = _Sink(threads=False, rate=None)
    keys = {lane_key(deliver(f"inc_{n}", "webhook"), hook) for n in range(200)}
    assert len(keys) == PARALLEL_SHARDS
    again = lane_key(deliver("inc_7", "webhook"), hook)
    assert again == lane_key(deliver("inc_7", "webhook"), hook)
    slack = _Sink(threads=True, rate=1.0)
    assert {lane_key(deliver(f"inc_{n}", "slack"), slack) for n in range(50)} == {("s", "t", 0)}
    paced = _Sink(threads=False, rate=5.0)
    assert {lane_key(deliver(f"inc_{n}", "webhook"), paced) for n in range(50)} == {("s", "t", 0)}


async def test_a_step_of_the_sev1_loop_is_never_coalesced_with_repeats() -> None:
    from datetime import UTC, datetime

    import msgspec

    from actors.delivery import _Lane
    from eyetok.messages import Deliver, Destination, Incident, IncidentAction, Severity

    at = datetime(2026, 11, 24, tzinfo=UTC)
    incident = Incident(
        incident_id="inc_1",
        tenant="operator",
        dedup_key="1",
        title="t",
        severity=Severity.CRITICAL,
        sev_channel=None,
        rule="fatal",
        status="open",
        opened_at=at,
        last_seen_at=at,
        event_count=2,
    )

    def update(n: int) -> Deliver:
        return Deliver(
            delivery_id=f"d{n}",
            tenant="operator",
            destination=Destination(sink_id="slack", sink_type="slack", target="#sev1"),
            incident=incident,
            action=IncidentAction.UPDATE,
            rule="fatal",
            planned_at=at,
            received_at=at,
        )

    lane = _Lane(key=("slack", "#sev1", 0))
    ack = msgspec.structs.replace(update(2), step="acknowledged")
    for d in (update(1), ack, update(3)):
        lane.push(d)
    assert [[d.delivery_id for d in await lane.pop()] for _ in range(2)] == [["d1", "d3"], ["d2"]]
