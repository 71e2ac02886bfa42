"""The Postgres incident_state mirror with the whole daemon: write-behind, and a fresh
dyno (an empty data directory) rehydrated from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actors.daemon import Daemon
from harness.peers.slack import FakeSlack
from tests.conftest import (
    daemon_settings,
    eventually,
    fixture_body,
    signed_headers,
    start_daemon,
)
from tests.peers.tcp_proxy import TcpProxy
from tests.pg import query


async def _post(daemon: Daemon, fixture: str) -> dict[str, str]:
    body = fixture_body(fixture)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
        response = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert response.status_code == 202, response.text
    answer: dict[str, str] = response.json()
    return answer


async def _row(dsn: str, incident_id: str) -> tuple[object, ...] | None:
    rows = await trio.to_thread.run_sync(
        lambda: query(
            dsn,
            "SELECT status, event_count, sev_channel, slack_channel, slack_ts "
            "FROM incident_state WHERE incident_id = %s",
            (incident_id,),
        )
    )
    return tuple(rows[0]) if rows else None


async def _incident_row(dsn: str, incident_id: str, *, events: int = 1) -> tuple[object, ...]:
    """The mirrored row once it has ``events`` events and its Slack thread."""

    async def arrived() -> bool:
        row = await _row(dsn, incident_id)
        return row is not None and row[1] == events and row[3] is not None

    await eventually(arrived)
    row = await _row(dsn, incident_id)
    assert row is not None
    return row


def _mirror_is(daemon: Daemon, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        await trio.lowlevel.checkpoint()
        return bool(daemon.readiness()["components"]["mirror"]["state"] == state)

    return check


async def test_incident_state_is_mirrored_and_a_fresh_dyno_rehydrates_from_it(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    first = await start_daemon(
        nursery, daemon_settings(tmp_path / "dyno-1", fake_slack, DATABASE_URL=pg_dsn)
    )
    opened = await _post(first, "event_alert_fatal")
    [top] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
    status, events, channel, slack_channel, slack_ts = await _incident_row(
        pg_dsn, opened["incident_id"]
    )
    assert (status, events, channel) == ("open", 1, "SEV1")
    assert (slack_channel, slack_ts) == ("#raxx-ops-alert-SEV1", top.ts)
    assert first.readiness()["components"]["mirror"]["state"] == "ok"
    first.request_stop()

    # A new dyno: the filesystem is gone, Postgres is not.
    second = await start_daemon(
        nursery, daemon_settings(tmp_path / "dyno-2", fake_slack, DATABASE_URL=pg_dsn)
    )
    again = await _post(second, "event_alert_fatal")
    assert again["action"] == "update"
    assert again["incident_id"] == opened["incident_id"]
    _, reply = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
    assert reply.thread_ts == top.ts  # the thread survived the lost filesystem
    await _incident_row(pg_dsn, opened["incident_id"], events=2)
    second.request_stop()


async def test_postgres_down_mid_run_degrades_the_mirror_not_routing_and_it_catches_up(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    info = conninfo_to_dict(pg_dsn)
    with TcpProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))) as proxy:
        proxied = make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port)
        daemon = await start_daemon(
            nursery, daemon_settings(tmp_path / "data", fake_slack, DATABASE_URL=proxied)
        )
        first = await _post(daemon, "event_alert_fatal")
        await _incident_row(pg_dsn, first["incident_id"])

        proxy.cut()  # Postgres is gone, as far as EyeTok can tell
        during = [await _post(daemon, f) for f in ("event_alert_warning", "event_alert_paper_gate")]
        during.append(await _post(daemon, "event_alert_fatal"))  # a repeat: event_count 2
        posts = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 4)
        assert len(posts) >= 4  # routing went on without Postgres
        await eventually(_mirror_is(daemon, "degraded"), within=15)
        readyz = daemon.readiness()
        assert readyz["ready"] is True  # degraded, not dead
        assert "buffered" in readyz["components"]["mirror"]["detail"]

        proxy.restore()
        for answer in during[:2]:  # the two incidents opened while Postgres was away
            await _incident_row(pg_dsn, answer["incident_id"])
        await _incident_row(pg_dsn, first["incident_id"], events=2)
        await eventually(_mirror_is(daemon, "ok"), within=15)
        daemon.request_stop()
