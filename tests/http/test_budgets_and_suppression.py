"""Budgets and the suppression window wired into the daemon: through the front door (the
probe and generic hooks), out through the fake Slack and the operator's API.

The daemon runs in-process on a wall clock anchored a few minutes before the real time
at most, so no test crosses a clock hour (the hour boundary itself is tested under
MockClock in tests/actors/test_budgets.py) and Slack's signed requests stay in window.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.clock import TrioWallClock
from eyetok.config import Settings
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually
from tests.verify import ROOT_TOKEN, tenant_slack_token, tenant_team, verify_slack

HOOK_TOKEN = "tenant-hook-token-5b1c"


async def cli(argv: list[str]) -> str:
    """``eyetok`` as the operator runs it (a subprocess with the root token), its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EYETOK_", "SLACK_"))}
    done = await trio.run_process(
        [sys.executable, "-m", "eyetok.cli", *argv],
        env=env | {"EYETOK_ROOT_TOKEN": ROOT_TOKEN},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    return out


AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}


def _tenants_config(count: int, *, extra: str = "", hold_s: float = 0.5) -> str:
    lines = [f"suppression: {{hold_s: {hold_s}, quiet_s: 30}}", extra, "tenants:"]
    lines += ["  operator: {tier: operator}"]
    for i in range(count):
        t = f"t{i:03d}"
        lines += [
            f"  {t}:",
            "    tier: team",
            "    hook_token_env: HOOK_TOKEN",
            "    policy: {routes: {SEV2: [{sink: " + t + "-slack, target: '#" + t + "'}],"
            " SEV2.5: [{sink: " + t + "-slack, target: '#" + t + "'}]}}",
        ]
    lines += ["sinks:", "  slack: {type: slack, tenant: operator}"]
    lines += [
        f"  t{i:03d}-slack: {{type: slack, tenant: t{i:03d}, token_env: T{i:03d}_SLACK_TOKEN}}"
        for i in range(count)
    ]
    return "\n".join(lines) + "\n"


def _tenant_tokens(count: int) -> dict[str, str]:
    """Each tenant's own Slack bot token (never the operator's: config refuses that)."""
    return {f"T{i:03d}_SLACK_TOKEN": f"xoxb-t{i:03d}" for i in range(count)}


def _anchor() -> datetime:
    """Now, or up to four minutes earlier: far enough from the next clock hour."""
    now = datetime.fromtimestamp(time.time(), tz=UTC)
    return now - timedelta(minutes=4) if now.minute >= 56 else now


async def _start(nursery: trio.Nursery, settings: Settings, clock: TrioWallClock) -> Daemon:
    daemon = Daemon(settings, clock, host="127.0.0.1")
    await nursery.start(daemon.run)
    await verify_slack(f"http://127.0.0.1:{daemon.bound_port}", "slack")
    return daemon


def _verdict(server: str) -> bytes:
    return json.dumps(
        {
            "server": server,
            "verdict": "down",
            "error_kind": "tls_handshake",
            "asn": 13335,
            "registry": "npm",
            "region": "us-east-1",
            "observed_at": "2026-11-24T15:00:00Z",
        }
    ).encode()


@pytest.fixture
async def api(nursery: trio.Nursery) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def _post(client: httpx.AsyncClient, url: str, body: bytes) -> None:
    response = await client.post(
        url,
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {HOOK_TOKEN}"},
    )
    assert response.status_code == 202, response.text


async def _statuses(daemon: Daemon, tenant_prefix: str = "t") -> dict[str, str]:
    assert daemon.store is not None
    rows = await daemon.store.read(
        lambda con: con.execute(
            "SELECT tenant, status FROM notifications WHERE tenant LIKE ? || '%'",
            [tenant_prefix],
        ).fetchall()
    )
    return {tenant: status for tenant, status in rows}


async def test_a_registry_wide_outage_is_one_acknowledgeable_notice(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, api: httpx.AsyncClient
) -> None:
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        # real time: the window must outlast 40 posts on a loaded 2-core machine (at 0.5 s
        # only 32-38 of them joined under load)
        config=_tenants_config(100, hold_s=4.0),
        HOOK_TOKEN=HOOK_TOKEN,
        **_tenant_tokens(100),
    )
    daemon = await _start(nursery, settings, TrioWallClock(_anchor()))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    for i in range(40):
        await _post(api, f"{base}/hooks/probe/t{i:03d}", _verdict(f"r{i}.registry.example"))

    def operator_posts() -> list[Any]:
        return [p for p in fake_slack.posts if p.channel == "eyetok-operator"]

    async def noticed() -> bool:
        return bool(operator_posts())

    await eventually(noticed)
    [notice] = operator_posts()
    assert notice.text is not None
    assert "Registry-wide outage" in notice.text
    assert "40 tenants (40% of 101 active)" in notice.text
    [button] = notice.blocks[-1]["elements"]  # type: ignore[index]
    assert button["action_id"] == "eyetok_acknowledge"
    cluster_id = button["value"].removeprefix("cluster:")

    async def all_withheld() -> bool:
        statuses = await _statuses(daemon)
        return len(statuses) == 40 and set(statuses.values()) == {"suppressed"}

    await eventually(all_withheld)
    listed = (await api.get(f"{base}/api/v1/suppressions", headers=AUTH)).json()
    [row] = listed["suppressions"]
    assert row["cluster_id"] == cluster_id
    assert (row["error_kind"], row["asn"], row["registry"]) == ("tls_handshake", "13335", "npm")
    assert row["tenants"] == [f"t{i:03d}" for i in range(40)]
    assert row["fired_at"] is not None
    assert row["cleared_at"] is None
    assert row["acked_at"] is None
    assert [p for p in fake_slack.posts if p.channel.startswith("t")] == []

    listed_cli = await cli(["suppressions", "--url", base])
    assert listed_cli.startswith(f"{cluster_id}  tls_handshake AS13335 npm: 40 tenants")
    assert listed_cli.rstrip().endswith("ACTIVE; NOT ACKNOWLEDGED")
    refused = await api.post(f"{base}/api/v1/suppressions/{cluster_id}/ack", json={"by": "x"})
    assert refused.status_code == 401
    missing = await api.post(
        f"{base}/api/v1/suppressions/clu_nope/ack", json={"by": "dana"}, headers=AUTH
    )
    assert missing.status_code == 404
    acked_cli = await cli(
        ["suppressions", "--url", base, "--ack", cluster_id, "--by", "dana", "--json"]
    )
    assert json.loads(acked_cli)["acked_by"] == "dana"
    acked = await api.post(  # a second acknowledgement changes nothing
        f"{base}/api/v1/suppressions/{cluster_id}/ack", json={"by": "lee"}, headers=AUTH
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["suppression"]["acked_by"] == "dana"
    assert daemon.store is not None
    events = await daemon.store.read(
        lambda con: con.execute(
            "SELECT event FROM audit_log WHERE event LIKE 'cluster_%' ORDER BY logged_at"
        ).fetchall()
    )
    assert [e for (e,) in events] == ["cluster_fired", "cluster_acknowledged"]
    daemon.request_stop()


async def test_below_the_floor_every_alert_goes_out(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, api: httpx.AsyncClient
) -> None:
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=_tenants_config(12),
        HOOK_TOKEN=HOOK_TOKEN,
        **_tenant_tokens(12),
    )
    daemon = await _start(nursery, settings, TrioWallClock(_anchor()))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    for i in range(10):
        await _post(api, f"{base}/hooks/probe/t{i:03d}", _verdict(f"r{i}.registry.example"))

    async def released() -> bool:
        assert daemon.store is not None
        held = await daemon.store.read(
            lambda con: con.execute(
                "SELECT DISTINCT tenant FROM audit_log WHERE event = 'delivery_held_unverified'"
            ).fetchall()
        )
        return len(held) == 10

    await eventually(released)
    # Released unchanged, to sinks not yet verified: held at the gate (pending outbox
    # rows until their handshake), not suppressed.
    statuses = await _statuses(daemon)
    assert len(statuses) == 10
    assert set(statuses.values()) == {"pending"}
    listed = (await api.get(f"{base}/api/v1/suppressions", headers=AUTH)).json()
    assert listed == {"suppressions": []}
    daemon.request_stop()


BUDGET_CONFIG = """
tenants:
  operator: {tier: operator}
  acme:
    tier: drill
    hook_token_env: HOOK_TOKEN
    policy:
      routes:
        SEV1: [{sink: acme-slack, target: '#acme-alerts'}]
        SEV2: [{sink: acme-slack, target: '#acme-alerts'}]
        SEV2.5: [{sink: acme-slack, target: '#acme-alerts'}]
        SEV3: [{sink: acme-slack, target: '#acme-alerts'}]
sinks:
  slack: {type: slack, tenant: operator}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
"""


def _alert(n: int) -> bytes:
    return json.dumps(
        {"title": f"Checkout failing #{n}", "severity": "high", "dedup_key": f"checkout-{n}"}
    ).encode()


async def test_the_drill_tier_is_capped_at_ten_and_the_hour_survives_a_restart(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, api: httpx.AsyncClient
) -> None:
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=BUDGET_CONFIG,
        HOOK_TOKEN=HOOK_TOKEN,
        ACME_SLACK_TOKEN=tenant_slack_token(fake_slack, "acme"),
    )
    anchor = _anchor()

    def posts(channel: str) -> list[Any]:
        return [p for p in fake_slack.posts if p.channel == channel]

    async with trio.open_nursery() as first_life:
        daemon = await _start(first_life, settings, TrioWallClock(anchor))
        base = f"http://127.0.0.1:{daemon.bound_port}"
        await verify_slack(base, "acme-slack", team=tenant_team("acme"))
        for n in range(12):
            await _post(api, f"{base}/hooks/generic/acme", _alert(n))

        async def capped() -> bool:
            return len(posts("acme-alerts")) == 10 and len(posts("alerts-cap")) == 1

        await eventually(capped)
        [line] = posts("alerts-cap")
        assert "`acme` (drill tier) reached its hourly budget of 10 alerts" in (line.text or "")
        [standing] = (await api.get(f"{base}/api/v1/budgets", headers=AUTH)).json()["budgets"]
        assert (standing["tenant"], standing["cap"], standing["admitted"], standing["held"]) == (
            "acme",
            10,
            10,
            2,
        )
        assert standing["capped"] is True
        shown = await cli(["budgets", "--url", base])
        assert shown.split() == ["acme", "drill", "10/10", "held", "2", "CAPPED"]
        daemon.request_stop()

    again = await _start(nursery, settings, TrioWallClock(anchor + timedelta(seconds=30)))
    base = f"http://127.0.0.1:{again.bound_port}"
    await _post(api, f"{base}/hooks/generic/acme", _alert(99))

    async def held_again() -> bool:
        listed = (await api.get(f"{base}/api/v1/budgets", headers=AUTH)).json()["budgets"]
        return bool(listed) and listed[0]["held"] == 3

    await eventually(held_again)
    [standing] = (await api.get(f"{base}/api/v1/budgets", headers=AUTH)).json()["budgets"]
    assert (standing["admitted"], standing["capped"]) == (10, True)
    assert len(posts("acme-alerts")) == 10
    assert len(posts("alerts-cap")) == 1
    again.request_stop()
