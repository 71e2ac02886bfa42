"""The tenant API against the daemon running in-process: per-tenant tokens, sinks and
routes that take effect in the running daemon, incidents, and the first two of the three
layers that refuse a cross-tenant write (the token's tenant; the tenant-scoped store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.config import Settings
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, start_daemon
from tests.pg import app_role, query
from tests.verify import (
    ROOT_TOKEN,
    slack_event_body,
    slack_headers,
    tenant_slack_token,
    tenant_team,
)

CONFIG = """
sinks:
  slack: {type: slack}
  beta-slack: {type: slack, tenant: beta, token_env: BETA_SLACK_TOKEN}
tenants:
  acme: {tier: team}
  beta:
    tier: team
    policy:
      routes:
        SEV1: [{sink: beta-slack, target: "#beta-pager"}]
"""
ACME_HOOK = "acme-hook-token-5b1e"
ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
ALL_CHANNELS = ("SEV1", "SEV2", "SEV2.5", "SEV3")


def settings(data_dir: Path, slack: FakeSlack, **env: str) -> Settings:
    return daemon_settings(
        data_dir,
        slack,
        config=CONFIG,
        ACME_SLACK_TOKEN=tenant_slack_token(slack, "acme"),
        BETA_SLACK_TOKEN=tenant_slack_token(slack, "beta"),
        EYETOK_HOOK_TOKEN_ACME=ACME_HOOK,
        **env,
    )


@pytest.fixture
async def tenant_daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Daemon]:
    instance = await start_daemon(nursery, settings(tmp_path / "data", fake_slack))
    yield instance
    instance.request_stop()


@pytest.fixture
async def api(tenant_daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{tenant_daemon.bound_port}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def issue(api: httpx.AsyncClient, tenant: str) -> str:
    answer = await api.post(f"/api/v1/tenants/{tenant}/tokens", json={"label": "ci"}, headers=ROOT)
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


async def audit_events(daemon: Daemon, event: str) -> list[tuple[str, str]]:
    assert daemon.topology is not None
    assert daemon.store is not None
    await daemon.topology.flush_history()
    rows = await daemon.store.read(
        lambda con: con.execute(
            "SELECT tenant, detail FROM audit_log WHERE event = ? ORDER BY logged_at", [event]
        ).fetchall()
    )
    return [(str(t), str(d)) for t, d in rows]


async def verify_tenant_slack(
    api: httpx.AsyncClient, tenant: str, sink_id: str, token: str
) -> None:
    """The Slack handshake, started by the tenant on its own sink."""
    started = await api.post(
        f"/api/v1/tenants/{tenant}/sinks/{sink_id}/verification", headers=bearer(token)
    )
    assert started.status_code == 200, started.text
    body = slack_event_body(f"nonce {started.json()['nonce']}", team=tenant_team(tenant))
    assert (await api.post("/slack/events", content=body, headers=slack_headers(body))).is_success
    with trio.fail_after(10):
        while True:
            listed = await api.get(f"/api/v1/tenants/{tenant}/sinks", headers=bearer(token))
            if any(s["sink_id"] == sink_id and s["deliverable"] for s in listed.json()["sinks"]):
                return
            await trio.sleep(0.02)


async def put_acme_slack(api: httpx.AsyncClient, token: str) -> httpx.Response:
    """acme writes its Slack sink ``acme.slack`` through the API (a new one: 201)."""
    written = await api.put(
        "/api/v1/tenants/acme/sinks/acme.slack",
        json={"type": "slack", "token_env": "ACME_SLACK_TOKEN"},
        headers=bearer(token),
    )
    assert written.status_code == 201, written.text
    return written


def routes_to(sink: str, target: str) -> dict[str, Any]:
    return {"routes": {channel: [{"sink": sink, "target": target}] for channel in ALL_CHANNELS}}


async def alert(api: httpx.AsyncClient, dedup_key: str) -> None:
    answer = await api.post(
        "/hooks/generic/acme",
        json={"title": f"checkout down ({dedup_key})", "dedup_key": dedup_key, "severity": "high"},
        headers=bearer(ACME_HOOK),
    )
    assert answer.status_code == 202, answer.text


async def test_a_route_written_by_the_api_changes_where_the_next_alert_goes(
    api: httpx.AsyncClient, tenant_daemon: Daemon, fake_slack: FakeSlack
) -> None:
    acme = await issue(api, "acme")
    written = await put_acme_slack(api, acme)
    assert written.json()["verified"] is False

    # A route to it before the handshake: recorded, held at the delivery gate.
    assert (
        await api.put(
            "/api/v1/tenants/acme/routes",
            json=routes_to("acme.slack", "#acme-pager"),
            headers=bearer(acme),
        )
    ).status_code == 200
    await alert(api, "before-verification")
    held = await audit_events(tenant_daemon, "delivery_held_unverified")
    with trio.fail_after(10):
        while not any("acme.slack" in d for _, d in held):
            await trio.sleep(0.05)
            held = await audit_events(tenant_daemon, "delivery_held_unverified")
    assert fake_slack.posts == []

    await verify_tenant_slack(api, "acme", "acme.slack", acme)
    await alert(api, "first")
    posts = await trio.to_thread.run_sync(lambda: fake_slack.wait_for_posts(2))
    assert [p.channel for p in posts] == ["acme-pager", "acme-pager"]
    # the held one went out once the handshake passed, first and marked late
    assert "before-verification" in (posts[0].text or "")
    assert "awaiting verification" in (posts[0].text or "")
    assert "first" in (posts[1].text or str(posts[1].blocks))

    routed = await api.put(
        "/api/v1/tenants/acme/routes",
        json=routes_to("acme.slack", "#acme-quiet"),
        headers=bearer(acme),
    )
    assert routed.status_code == 200, routed.text
    await alert(api, "second")
    posts = await trio.to_thread.run_sync(lambda: fake_slack.wait_for_posts(3))
    assert [p.channel for p in posts] == ["acme-pager", "acme-pager", "acme-quiet"]

    shown = (await api.get("/api/v1/tenants/acme/routes", headers=bearer(acme))).json()
    assert shown["source"] == "api"
    assert shown["routes"]["SEV2"] == [{"sink": "acme.slack", "target": "#acme-quiet"}]

    assert tenant_daemon.topology is not None
    await tenant_daemon.topology.flush_history()
    listed = await api.get("/api/v1/tenants/acme/incidents?status=open", headers=bearer(acme))
    assert listed.status_code == 200, listed.text
    incidents = listed.json()["incidents"]
    assert {i["dedup_key"] for i in incidents} == {"before-verification", "first", "second"}
    assert {i["tenant"] for i in incidents} == {"acme"}
    one = await api.get(
        f"/api/v1/tenants/acme/incidents/{incidents[0]['incident_id']}", headers=bearer(acme)
    )
    assert one.status_code == 200
    assert one.json()["incident_id"] == incidents[0]["incident_id"]

    # A verified sink changed through the API must prove ownership again.
    changed = await api.put(
        "/api/v1/tenants/acme/sinks/acme.slack",
        json={"type": "slack", "token_env": "ACME_SLACK_TOKEN", "rate_per_channel": 2.0},
        headers=bearer(acme),
    )
    assert changed.status_code == 200, changed.text
    with trio.fail_after(10):
        while True:
            listed_sinks = (
                await api.get("/api/v1/tenants/acme/sinks", headers=bearer(acme))
            ).json()
            (sink,) = listed_sinks["sinks"]
            if sink["verification"] == "rotated":
                break
            await trio.sleep(0.02)
    assert sink["deliverable"] is False
    assert "verify it again" in sink["why"]

    # Beta's token sees none of it, and beta's own list holds none of acme's incidents.
    beta = await issue(api, "beta")
    assert (
        await api.get("/api/v1/tenants/acme/incidents", headers=bearer(beta))
    ).status_code == 403
    assert (await api.get("/api/v1/tenants/beta/incidents", headers=bearer(beta))).json()[
        "incidents"
    ] == []
    gone = await api.get(
        f"/api/v1/tenants/beta/incidents/{incidents[0]['incident_id']}", headers=bearer(beta)
    )
    assert gone.status_code == 404


async def test_layer_one_a_token_writes_only_its_own_tenant(
    api: httpx.AsyncClient, tenant_daemon: Daemon
) -> None:
    acme, beta = await issue(api, "acme"), await issue(api, "beta")
    hook = {
        "type": "webhook",
        "url": "https://hooks.acme.example/eyetok",
        "secret_env": "ACME_WHSEC",
    }

    # Beta's token on acme's path: refused, audited, nothing written.
    answer = await api.put("/api/v1/tenants/acme/sinks/acme.hook", json=hook, headers=bearer(beta))
    assert answer.status_code == 403, answer.text
    answer = await api.put(
        "/api/v1/tenants/acme/routes", json=routes_to("slack", "#x"), headers=bearer(beta)
    )
    assert answer.status_code == 403
    answer = await api.delete("/api/v1/tenants/beta/sinks/beta-slack", headers=bearer(acme))
    assert answer.status_code == 403
    answer = await api.post(
        "/api/v1/tenants/beta/sinks/beta-slack/verification", headers=bearer(acme)
    )
    assert answer.status_code == 403
    refused = await audit_events(tenant_daemon, "cross_tenant_refused")
    assert len(refused) == 4
    assert all("of tenant" in detail for _, detail in refused)
    listed = await api.get("/api/v1/tenants/acme/sinks", headers=bearer(acme))
    assert [s["sink_id"] for s in listed.json()["sinks"]] == []

    # Acme's own token, naming beta in what it writes: refused too (and audited).
    answer = await api.put("/api/v1/tenants/acme/sinks/beta.hook", json=hook, headers=bearer(acme))
    assert (answer.status_code, answer.json()["field"]) == (403, "sink_id")
    answer = await api.put(
        "/api/v1/tenants/acme/sinks/acme.hook",
        json={**hook, "tenant": "beta"},
        headers=bearer(acme),
    )
    assert (answer.status_code, answer.json()["field"]) == (403, "tenant")
    answer = await api.put(
        "/api/v1/tenants/acme/routes",
        json=routes_to("beta-slack", "#beta-pager"),
        headers=bearer(acme),
    )
    assert (answer.status_code, answer.json()["field"]) == (400, "routes.SEV1[0].sink")
    assert len(await audit_events(tenant_daemon, "cross_tenant_refused")) == 7
    # ...nor another's credentials, nor the operator's.
    answer = await api.put(
        "/api/v1/tenants/acme/sinks/acme.hook",
        json={**hook, "secret_env": "BETA_WHSEC"},
        headers=bearer(acme),
    )
    assert (answer.status_code, answer.json()["field"]) == (400, "secret_env")
    answer = await api.put(
        "/api/v1/tenants/acme/sinks/acme.slack", json={"type": "slack"}, headers=bearer(acme)
    )
    assert (answer.status_code, answer.json()["field"]) == (400, "token_env")

    # Root operations need the root token.
    assert (await api.post("/api/v1/tenants/acme/tokens", headers=bearer(acme))).status_code == 403
    assert len(await audit_events(tenant_daemon, "root_op_refused")) == 1
    assert len(await audit_events(tenant_daemon, "tenant_token_issued")) == 2
    # Root may read across tenants; each use is audited under the tenant it touched.
    assert (await api.get("/api/v1/tenants/beta/incidents", headers=ROOT)).status_code == 200
    root_uses = await audit_events(tenant_daemon, "root_api")
    assert root_uses == [
        ("acme", "issue_token"),
        ("beta", "issue_token"),
        ("beta", "authorise incidents"),
    ]


async def test_bad_input_is_a_400_naming_the_field(api: httpx.AsyncClient) -> None:
    acme = await issue(api, "acme")
    cases: list[tuple[object, str]] = [
        ({"type": "sms", "to": "+1555"}, "type"),
        ({"type": "webhook", "secret_env": "ACME_WHSEC"}, "url"),
        ({"type": "webhook", "url": "ftp://x.example", "secret_env": "ACME_WHSEC"}, "url"),
        ({"type": "email", "to": "oncall@acme.example", "colour": "red"}, "colour"),
        ({"type": "pagerduty", "routing_key_env": "ACME_PD", "timeout_s": "soon"}, "timeout_s"),
        ([1, 2], "(body)"),
    ]
    for body, field in cases:
        answer = await api.put("/api/v1/tenants/acme/sinks/acme.x", json=body, headers=bearer(acme))
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["field"] == field, (body, answer.json())
    answer = await api.put(
        "/api/v1/tenants/acme/sinks/acme.x", content=b"{nope", headers=bearer(acme)
    )
    assert (answer.status_code, answer.json()["field"]) == (400, "(body)")
    answer = await api.put(
        "/api/v1/tenants/acme/routes", json={"routes": {"SEV9": []}}, headers=bearer(acme)
    )
    assert answer.status_code == 400
    assert answer.json()["field"].startswith("routes")
    answer = await api.put(
        "/api/v1/tenants/acme/sinks/slack", json={"type": "slack"}, headers=bearer(acme)
    )
    assert answer.status_code == 400  # not <tenant>.<name>
    assert (await api.get("/api/v1/tenants/acme/sinks")).status_code == 401
    assert (
        await api.get("/api/v1/tenants/acme/sinks", headers=bearer("etk_wrong"))
    ).status_code == 401
    assert (await api.get("/api/v1/tenants/nobody/sinks", headers=ROOT)).status_code == 404


async def test_tokens_and_sinks_survive_a_restart_and_revocation_holds(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    data = tmp_path / "data"
    tokens_seen: dict[str, str] = {}

    async def use_first(first: Daemon) -> None:
        url = f"http://127.0.0.1:{first.bound_port}"
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
            acme = await issue(api, "acme")
            spare = await issue(api, "acme")
            written = await api.put(
                "/api/v1/tenants/acme/sinks/acme.mail",
                json={"type": "email", "to": "oncall@acme.example"},
                headers=bearer(acme),
            )
            assert written.status_code == 201, written.text
            assert (
                await api.put(
                    "/api/v1/tenants/acme/routes",
                    json=routes_to("acme.mail", "oncall@acme.example"),
                    headers=bearer(acme),
                )
            ).status_code == 200
            tokens = (await api.get("/api/v1/tenants/acme/tokens", headers=ROOT)).json()["tokens"]
            spare_id = next(t["token_id"] for t in tokens if t["token_id"] != tokens[0]["token_id"])
            assert (
                await api.delete(f"/api/v1/tenants/acme/tokens/{spare_id}", headers=ROOT)
            ).status_code == 200
            assert (
                await api.get("/api/v1/tenants/acme/sinks", headers=bearer(spare))
            ).status_code == 401
            assert first.topology is not None
            await first.topology.flush_history()
            for path in (p for p in data.rglob("*") if p.is_file()):  # journal and history
                stored = path.read_bytes()
                assert acme.encode() not in stored, path
                assert spare.encode() not in stored, path
        tokens_seen.update(acme=acme, spare=spare)
        first.request_stop()

    async with trio.open_nursery() as first_run:
        await use_first(await start_daemon(first_run, settings(data, fake_slack)))
    acme, spare = tokens_seen["acme"], tokens_seen["spare"]

    second = await start_daemon(nursery, settings(data, fake_slack))
    url = f"http://127.0.0.1:{second.bound_port}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
        listed = await api.get("/api/v1/tenants/acme/sinks", headers=bearer(acme))
        assert listed.status_code == 200, listed.text
        assert [s["sink_id"] for s in listed.json()["sinks"]] == ["acme.mail"]
        assert (await api.get("/api/v1/tenants/acme/routes", headers=bearer(acme))).json()[
            "source"
        ] == "api"
        assert (
            await api.get("/api/v1/tenants/acme/sinks", headers=bearer(spare))
        ).status_code == 401
        # Removing a sink that a route still names is refused; after the routes move, it goes.
        assert (
            await api.delete("/api/v1/tenants/acme/sinks/acme.mail", headers=bearer(acme))
        ).status_code == 409
    second.request_stop()


async def test_a_fresh_dyno_takes_the_tenants_tokens_sinks_and_routes_back_from_postgres(
    tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    """On a dyno the data directory is ephemeral: the mirror (written as a role bound by
    row-level security) is where the tenant API's changes survive a restart."""
    with app_role(pg_dsn) as dsn:
        issued: dict[str, str] = {}
        async with trio.open_nursery() as first_run:
            first = await start_daemon(
                first_run, settings(tmp_path / "one", fake_slack, DATABASE_URL=dsn)
            )
            url = f"http://127.0.0.1:{first.bound_port}"
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
                issued["acme"] = acme = await issue(api, "acme")
                written = await api.put(
                    "/api/v1/tenants/acme/sinks/acme.slack",
                    json={"type": "slack", "token_env": "ACME_SLACK_TOKEN"},
                    headers=bearer(acme),
                )
                assert written.status_code == 201, written.text
                routed = await api.put(
                    "/api/v1/tenants/acme/routes",
                    json=routes_to("acme.slack", "#acme-pager"),
                    headers=bearer(acme),
                )
                assert routed.status_code == 200, routed.text

            async def mirrored() -> bool:
                rows = await trio.to_thread.run_sync(
                    lambda: query(
                        pg_dsn,
                        "SELECT (SELECT count(*) FROM tenant_config_log),"
                        " (SELECT count(*) FROM tenant_tokens)",
                    )
                )
                return rows == [(2, 1)]

            await eventually(mirrored)
            stored = await trio.to_thread.run_sync(
                lambda: query(pg_dsn, "SELECT token::text, token_hash FROM tenant_tokens")
            )
            assert acme not in str(stored)
            first.request_stop()

        async with trio.open_nursery() as second_run:
            second = await start_daemon(
                second_run, settings(tmp_path / "two", fake_slack, DATABASE_URL=dsn)
            )
            url = f"http://127.0.0.1:{second.bound_port}"
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
                listed = await api.get("/api/v1/tenants/acme/sinks", headers=bearer(issued["acme"]))
                assert listed.status_code == 200, listed.text
                assert [s["sink_id"] for s in listed.json()["sinks"]] == ["acme.slack"]
                routes = (
                    await api.get("/api/v1/tenants/acme/routes", headers=bearer(issued["acme"]))
                ).json()
                assert routes["source"] == "api"
                assert routes["routes"]["SEV1"] == [{"sink": "acme.slack", "target": "#acme-pager"}]
            second.request_stop()


async def test_a_handshake_for_a_sink_removed_meanwhile_is_dropped_not_a_crash(
    api: httpx.AsyncClient, tenant_daemon: Daemon
) -> None:
    acme = await issue(api, "acme")
    await put_acme_slack(api, acme)
    started = await api.post(
        "/api/v1/tenants/acme/sinks/acme.slack/verification", headers=bearer(acme)
    )
    assert started.status_code == 200, started.text
    removed = await api.delete("/api/v1/tenants/acme/sinks/acme.slack", headers=bearer(acme))
    assert removed.status_code == 200, removed.text
    # The nonce comes back after the sink is gone: the handshake is dropped.
    body = slack_event_body(f"nonce {started.json()['nonce']}")
    assert (await api.post("/slack/events", content=body, headers=slack_headers(body))).is_success
    # The verification actor still answers (it did not crash) and nothing was verified.
    restarted = await api.post(
        "/api/v1/tenants/acme/sinks/acme.slack/verification", headers=bearer(acme)
    )
    assert restarted.status_code == 404, restarted.text
    listed = await api.get("/api/v1/sinks", headers=ROOT)
    assert [
        s for s in listed.json()["sinks"] if s["sink_id"] == "acme.slack" and s["deliverable"]
    ] == []
    assert tenant_daemon.supervisor.restarts.get("verification", 0) == 0
