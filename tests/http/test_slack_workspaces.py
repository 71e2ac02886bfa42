"""A tenant's Slack sink is bound to its own workspace: one whose bot token is in the
operator's workspace is refused when written, routed to or verified (two tenants'
tokens in one workspace let acme post into the operator's channels). The daemon
in-process; the fake Slack answers auth.test per token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.daemon import Daemon
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from tests.conftest import daemon_settings, eventually, start_daemon
from tests.verify import ROOT_TOKEN, tenant_slack_token, verify_slack

ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
CONFIG = """
sinks:
  slack: {type: slack}
  beta-slack: {type: slack, tenant: beta, token_env: BETA_SLACK_TOKEN}
tenants:
  acme: {tier: team}
  beta: {tier: team}
"""


@pytest.fixture
async def api(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[httpx.AsyncClient]:
    # Other bot tokens of the operator's own workspace (TEAM_ID): same team, new token.
    fake_slack.add_workspace("xoxb-acme-in-ops", TEAM_ID)
    fake_slack.add_workspace("xoxb-beta-in-ops", TEAM_ID)
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=CONFIG,
        ACME_IN_OPS="xoxb-acme-in-ops",
        ACME_OPERATOR_COPY=fake_slack.token,  # the operator's bot token itself
        ACME_OWN=tenant_slack_token(fake_slack, "acme"),
        BETA_SLACK_TOKEN="xoxb-beta-in-ops",
    )
    daemon: Daemon = await start_daemon(nursery, settings)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0
    ) as client:
        yield client
    daemon.request_stop()


async def _token(api: httpx.AsyncClient, tenant: str) -> dict[str, str]:
    issued = await api.post(f"/api/v1/tenants/{tenant}/tokens", json={"label": "t"}, headers=ROOT)
    assert issued.status_code == 201, issued.text
    return {"authorization": f"Bearer {issued.json()['token']}"}


async def test_a_tenant_sink_on_a_token_of_the_operators_workspace_is_refused(
    api: httpx.AsyncClient,
) -> None:
    acme = await _token(api, "acme")
    for env in ("ACME_IN_OPS", "ACME_OPERATOR_COPY"):
        refused = await api.put(
            "/api/v1/tenants/acme/sinks/acme.ops",
            json={"type": "slack", "token_env": env},
            headers=acme,
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["field"] == "token_env"
        assert "operator's Slack workspace" in refused.json()["error"]
    listed = await api.get("/api/v1/tenants/acme/sinks", headers=acme)
    assert "acme.ops" not in {s["sink_id"] for s in listed.json()["sinks"]}
    # its own workspace is fine, and so is routing to it
    own = await api.put(
        "/api/v1/tenants/acme/sinks/acme.slack",
        json={"type": "slack", "token_env": "ACME_OWN"},
        headers=acme,
    )
    assert own.status_code == 201, own.text
    routed = await api.put(
        "/api/v1/tenants/acme/routes",
        json={"routes": {"SEV1": [{"sink": "acme.slack", "target": "#acme-pager"}]}},
        headers=acme,
    )
    assert routed.status_code == 200, routed.text


async def test_a_file_sink_in_the_operators_workspace_is_neither_routed_to_nor_verified(
    api: httpx.AsyncClient,
) -> None:
    beta = await _token(api, "beta")
    routed = await api.put(
        "/api/v1/tenants/beta/routes",
        json={"routes": {"SEV1": [{"sink": "beta-slack", "target": "#raxx-ops-alert-SEV1"}]}},
        headers=beta,
    )
    assert routed.status_code == 403, routed.text
    assert "operator's Slack workspace" in routed.json()["error"]
    started = await api.post("/api/v1/tenants/beta/sinks/beta-slack/verification", headers=beta)
    assert started.status_code == 400, started.text
    assert "operator's Slack workspace" in started.text
    assert "nonce" not in started.json() or started.json()["nonce"] is None
    listed = (await api.get("/api/v1/sinks", headers=ROOT)).json()["sinks"]
    [row] = [s for s in listed if s["sink_id"] == "beta-slack"]
    assert row["status"] == "failed"
    assert row["deliverable"] is False
    assert row["workspace"] == TEAM_ID


async def test_a_tenant_sink_verified_before_the_check_is_failed_on_the_next_start(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_workspace("xoxb-beta", "T0BETA")
    settings = daemon_settings(tmp_path, fake_slack, config=CONFIG, BETA_SLACK_TOKEN="xoxb-beta")
    async with trio.open_nursery() as life:
        daemon = await start_daemon(life, settings, verify=())
        await verify_slack(f"http://127.0.0.1:{daemon.bound_port}", "beta-slack", team="T0BETA")
        daemon.request_stop()
    # the same token turns out to be one of the operator's workspace (say, verified by a
    # release that did not look): the next start fails it, nothing more goes there
    fake_slack.add_workspace("xoxb-beta", TEAM_ID)
    async with trio.open_nursery() as life:
        daemon = await start_daemon(life, settings, verify=())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0
        ) as client:

            async def failed() -> bool:
                listed = (await client.get("/api/v1/sinks", headers=ROOT)).json()["sinks"]
                row = next(s for s in listed if s["sink_id"] == "beta-slack")
                return bool(row["status"] == "failed" and not row["deliverable"])

            await eventually(failed)
        daemon.request_stop()
