"""SEV1's human loop on a fresh dyno: the filesystem is gone, Postgres is not; the
re-notification taken before is not repeated and the escalation due after is not lost."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio

from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.pg import query

CONFIG = """
tenants:
  operator:
    tier: operator
    escalation:
      ack_renotify_s: 1
      ack_escalate_s: 4
      secondary: {sink: slack, target: "#oncall-secondary"}
"""


def _renotified(slack: FakeSlack) -> list[str]:
    return [p.ts for p in slack.posts if (p.text or "").startswith("<@U0ONCALL> Not ack")]


def _secondary(slack: FakeSlack) -> list[str]:
    return [p.ts for p in slack.posts if p.channel == "oncall-secondary"]


async def test_a_fresh_dyno_neither_repeats_nor_loses_a_step(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    first = await start_daemon(
        nursery,
        daemon_settings(tmp_path / "dyno-1", fake_slack, config=CONFIG, DATABASE_URL=pg_dsn),
    )
    body = fixture_body("event_alert_fatal")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.bound_port}") as client:
        answer = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert answer.status_code == 202, answer.text
    incident_id = answer.json()["incident_id"]

    async def renotified_in_postgres() -> bool:
        rows = await trio.to_thread.run_sync(
            lambda: query(
                pg_dsn,
                "SELECT snapshot::text FROM incident_state WHERE incident_id = %s",
                (incident_id,),
            )
        )
        return bool(rows) and json.loads(rows[0][0]).get("renotified_at") is not None

    await eventually(lambda: trio.to_thread.run_sync(lambda: bool(_renotified(fake_slack))))
    await eventually(renotified_in_postgres)
    assert _secondary(fake_slack) == []
    first.request_stop()
    await trio.sleep(0.5)

    second = await start_daemon(
        nursery,
        daemon_settings(tmp_path / "dyno-2", fake_slack, config=CONFIG, DATABASE_URL=pg_dsn),
    )
    await eventually(lambda: trio.to_thread.run_sync(lambda: bool(_secondary(fake_slack))))
    await trio.sleep(1.0)  # a repeat would show by now
    assert len(_renotified(fake_slack)) == 1
    assert len(_secondary(fake_slack)) == 1
    second.request_stop()
