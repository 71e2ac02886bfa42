"""The dashboard against a daemon in this trio run: this hour's budgets, and an open
suppression cluster acknowledged with its button through the operator API's path."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import trio

from eyetok.messages import SuppressionRecorded
from eyetok.sources import sentry
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.verify import ROOT_TOKEN, tenant_slack_token


async def _signed_in(client: httpx.AsyncClient) -> str:
    page = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = await client.post(
        "/console/login", data={"csrf": csrf[1], "name": "sam", "token": ROOT_TOKEN}
    )
    assert answer.status_code == 302, answer.text
    dashboard = await client.get("/console")
    assert dashboard.status_code == 200
    session_csrf = re.search(r'name="csrf" value="([^"]+)"', dashboard.text)
    assert session_csrf is not None
    return session_csrf[1]


ACME_SECRET = "acme-sentry-secret-dashboard"
CONFIG = """
tenants:
  acme:
    tier: team
    policy: {routes: {SEV1: [{sink: acme-slack, target: '#acme'}]}}
sinks:
  slack: {type: slack, tenant: operator}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
"""


async def test_budgets_and_a_cluster_acknowledged_from_the_dashboard(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(
        tmp_path / "data",
        fake_slack,
        config=CONFIG,
        SENTRY_CLIENT_SECRET_ACME=ACME_SECRET,
        ACME_SLACK_TOKEN=tenant_slack_token(fake_slack, "acme"),
    )
    daemon = await start_daemon(nursery, settings)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}")
    body = fixture_body("event_alert_fatal")
    headers = signed_headers(body) | {"sentry-hook-signature": sentry.sign(body, ACME_SECRET)}
    posted = await client.post("/hooks/sentry/acme", content=body, headers=headers)
    assert posted.status_code == 202, posted.text
    auth = {"authorization": f"Bearer {ROOT_TOKEN}"}

    async def acme_spent() -> bool:
        budgets = (await client.get("/api/v1/budgets", headers=auth)).json()["budgets"]
        return any(b["tenant"] == "acme" and b["admitted"] == 1 for b in budgets)

    await eventually(acme_spent, within=5)
    topology = daemon.topology
    assert topology is not None
    await topology.record(
        SuppressionRecorded(
            cluster_id="cl_console",
            event="fired",
            at=daemon.clock.now(),
            cluster_key="dns_timeout|AS13335|npm",
            tenants=("t001", "t002"),
            active_tenants=40,
            withheld=31,
        )
    )
    csrf = await _signed_in(client)
    page = (await client.get("/console")).text
    budgets = page[page.index('<section id="budgets"') : page.index('<section id="suppressions"')]
    assert '<tr class=""><td>acme</td><td>team</td><td>1</td><td>1000</td>' in budgets
    clusters = page[page.index('<section id="suppressions"') : page.index('<section id="receipts"')]
    assert "cl_console" in clusters
    assert 'action="/console/suppressions/cl_console/ack"' in clusters

    refused = await client.post("/console/suppressions/cl_console/ack", data={"csrf": "stale"})
    assert refused.status_code == 403
    unknown = await client.post("/console/suppressions/cl_nope/ack", data={"csrf": csrf})
    assert unknown.status_code == 404
    acked = await client.post("/console/suppressions/cl_console/ack", data={"csrf": csrf})
    assert acked.status_code == 302
    rows = (
        await client.get("/api/v1/suppressions", headers={"authorization": f"Bearer {ROOT_TOKEN}"})
    ).json()["suppressions"]
    [row] = [r for r in rows if r["cluster_id"] == "cl_console"]
    assert row["acked_by"] == "console:sam"
    assert row["acked_at"]
    page = (await client.get("/console?said=cluster")).text
    assert "Cluster acknowledged." in page
    assert "acknowledged by console:sam at" in page
    await client.aclose()
    daemon.request_stop()
