"""Sink ownership verification through the daemon's real HTTP surfaces and local peers:
the four handshakes, the delivery gate, and re-verification."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.messages import ReverifyDue
from eyetok.standard_webhooks import new_secret
from harness.peers.dns import FakeDns
from harness.peers.oauth import FakeOAuth
from harness.peers.slack import FakeSlack
from harness.peers.webhook_receiver import WebhookReceiver
from tests.conftest import (
    daemon_settings,
    eventually,
    fixture_body,
    signed_headers,
    start_daemon,
)
from tests.peers.smtp import FakeSmtp
from tests.verify import ROOT_TOKEN, slack_event_body, slack_headers

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}


def _client(daemon: Daemon) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0)


async def _standing(daemon: Daemon, sink_id: str) -> dict[str, object]:
    async with _client(daemon) as client:
        listed = (await client.get("/api/v1/sinks", headers=AUTH)).json()["sinks"]
    found: dict[str, object] = next((s for s in listed if s["sink_id"] == sink_id), {})
    return found


async def _start(daemon: Daemon, sink_id: str) -> httpx.Response:
    async with _client(daemon) as client:
        return await client.post(
            f"/api/v1/sinks/{sink_id}/verification", json={"requested_by": "alice"}, headers=AUTH
        )


def _is(daemon: Daemon, sink_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await _standing(daemon, sink_id)).get("status") == status

    return check


async def _notifications(daemon: Daemon) -> list[tuple[object, ...]]:
    assert daemon.topology is not None
    assert daemon.store is not None
    await daemon.topology.flush_history()
    return await daemon.store.read(
        lambda con: con.execute(
            "SELECT sink_id, status, detail FROM notifications ORDER BY planned_at"
        ).fetchall()
    )


# --- Slack: a nonce in a direct message ----------------------------------------------


async def test_slack_handshake_by_dm_makes_the_sink_live_for_30_days(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack), verify=())
    started = await _start(daemon, "slack")
    assert started.status_code == 200
    nonce = started.json()["nonce"]
    assert len(nonce) == 64  # 32 bytes
    assert (await _standing(daemon, "slack"))["status"] == "pending"
    body = slack_event_body(f"verifying: {nonce}")
    async with _client(daemon) as client:
        answer = await client.post("/slack/events", content=body, headers=slack_headers(body))
    assert answer.status_code == 200
    await eventually(_is(daemon, "slack", "live"))
    row = await _standing(daemon, "slack")
    assert row["deliverable"] is True
    assert row["verified_by"] == "slack:U0OWNER"
    assert row["approved_by"] == "alice"
    assert str(row["expires_at"]) > str(row["handshake_at"])
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    stored = await daemon.store.read(
        lambda con: con.execute(
            "SELECT status, nonce_hash, expires_at - handshake_at FROM verification_log "
            "ORDER BY recorded_at"
        ).fetchall()
    )
    assert [s for s, _, _ in stored] == ["pending", "live"]
    assert all(nonce not in str(r) for r in stored)  # only the hash is kept
    assert stored[-1][2].days == 30
    daemon.request_stop()


async def test_a_nonce_seen_in_a_channel_is_refused_and_burnt(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack), verify=())
    nonce = (await _start(daemon, "slack")).json()["nonce"]
    public = slack_event_body(nonce, channel_type="channel")
    async with _client(daemon) as client:
        await client.post("/slack/events", content=public, headers=slack_headers(public))
        await eventually(_is(daemon, "slack", "failed"))
        assert "not a DM" in str((await _standing(daemon, "slack"))["detail"])
        # burnt: the same nonce in a DM afterwards does nothing
        dm = slack_event_body(nonce)
        await client.post("/slack/events", content=dm, headers=slack_headers(dm))
    await trio.sleep(0.2)
    assert (await _standing(daemon, "slack"))["status"] == "failed"
    daemon.request_stop()


async def test_slack_events_need_a_fresh_valid_signature(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack), verify=())
    body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    async with _client(daemon) as client:
        ok = await client.post("/slack/events", content=body, headers=slack_headers(body))
        assert ok.json() == {"challenge": "c-123"}
        forged = await client.post(
            "/slack/events", content=body, headers=slack_headers(body, secret="wrong")
        )
        assert forged.status_code == 401
        stale = slack_headers(body)
        stale["x-slack-request-timestamp"] = str(int(stale["x-slack-request-timestamp"]) - 600)
        assert (await client.post("/slack/events", content=body, headers=stale)).status_code == 401
        no_token = await client.post("/api/v1/sinks/slack/verification")
        assert no_token.status_code == 401
    daemon.request_stop()


# --- the gate -------------------------------------------------------------------------


async def test_an_unverified_sink_gets_nothing_yet_and_the_tenant_is_told_once_a_day(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    secret = new_secret()
    with WebhookReceiver({"ops": secret}) as receiver:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            f"  hook: {{type: webhook, url: '{receiver.url}', secret_env: HOOK_SECRET}}\n"
            "tenants:\n  operator:\n    tier: operator\n    policy:\n      routes:\n"
            "        SEV1: [{sink: hook, target: hook}, {sink: slack, target: '#sev1'}]\n"
            "        SEV3: [{sink: slack, target: '#sev3'}]\n"
        )
        settings = daemon_settings(tmp_path, fake_slack, config=config, HOOK_SECRET=secret)
        daemon = await start_daemon(nursery, settings)  # Slack verified; the hook is not
        async with _client(daemon) as client:
            for _ in range(2):
                body = fixture_body("event_alert_fatal")
                response = await client.post(
                    "/hooks/sentry", content=body, headers=signed_headers(body)
                )
                assert response.status_code == 202
        # the SEV1 post in Slack, then ONE notice about the unverified hook (not two)
        posts = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
        await trio.sleep(0.5)
        notices = [p for p in fake_slack.posts if "did not deliver" in p.text]
        assert len(notices) == 1
        assert "`hook`" in notices[0].text
        assert notices[0].channel == "sev1"  # the tenant's verified Slack sink
        assert posts[0].channel == "sev1"
        assert receiver.deliveries == []  # nothing reached the unverified address
        rows = await _notifications(daemon)
        hook_rows = [r for r in rows if r[0] == "hook"]
        # held for the handshake (pending outbox rows), not ended
        assert [r[1] for r in hook_rows] == ["pending", "pending"]
        assert daemon.store is not None
        audit = await daemon.store.read(
            lambda con: con.execute(
                "SELECT detail FROM audit_log WHERE event = 'delivery_held_unverified'"
            ).fetchall()
        )
        assert len(audit) == 2
        assert "never verified" in audit[0][0]
        daemon.request_stop()


# --- webhook: a DNS TXT record --------------------------------------------------------


async def test_webhook_handshake_by_dns_txt_and_weekly_renewal(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    secret = new_secret()
    with FakeDns() as dns, WebhookReceiver({"ops": secret}) as receiver:
        url = receiver.url.replace("127.0.0.1", "hooks.acme.example")
        config = (
            f"sinks:\n  slack: {{type: slack}}\n"
            f"  hook: {{type: webhook, url: '{url}', secret_env: HOOK_SECRET}}\n"
            "verification: {txt_every_s: 0.1, txt_for_s: 5}\n"
        )
        settings = daemon_settings(
            tmp_path,
            fake_slack,
            config=config,
            HOOK_SECRET=secret,
            EYETOK_DNS_RESOLVER=f"127.0.0.1:{dns.port}",
        )
        daemon = await start_daemon(nursery, settings, verify=())
        # a record for another domain proves nothing
        started = (await _start(daemon, "hook")).json()
        nonce = started["nonce"]
        assert len(nonce) == 32  # 16 bytes
        assert "_eyetok-verify.hooks.acme.example" in started["message"]
        dns.set_txt("_eyetok-verify.evil.example", nonce)
        dns.set_txt("_eyetok-verify.hooks.acme.example", "0" * 32)  # a wrong nonce
        await trio.sleep(0.3)
        assert (await _standing(daemon, "hook"))["status"] == "pending"
        dns.set_txt("_eyetok-verify.hooks.acme.example", nonce)
        await eventually(_is(daemon, "hook", "live"))

        # the weekly re-verification: still there -> renewed; removed -> failed
        assert daemon.topology is not None
        channel = daemon.topology.channels["verification"]
        assert isinstance(channel, trio.MemorySendChannel)
        later = daemon.clock.now().replace(year=daemon.clock.now().year + 1)
        await channel.send(ReverifyDue(at=later))
        await eventually(_is(daemon, "hook", "renewed"))
        dns.clear("_eyetok-verify.hooks.acme.example")
        await channel.send(ReverifyDue(at=later.replace(year=later.year + 1)))
        await eventually(_is(daemon, "hook", "failed"))
        daemon.request_stop()


async def test_a_txt_record_that_never_appears_fails_the_handshake(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeDns() as dns:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            "  hook: {type: webhook, url: 'https://hooks.acme.example/x', secret_env: HS}\n"
            "verification: {txt_every_s: 0.05, txt_for_s: 0.3}\n"
        )
        settings = daemon_settings(
            tmp_path,
            fake_slack,
            config=config,
            HS=new_secret(),
            EYETOK_DNS_RESOLVER=f"127.0.0.1:{dns.port}",
        )
        daemon = await start_daemon(nursery, settings, verify=())
        await _start(daemon, "hook")
        await eventually(_is(daemon, "hook", "failed"))
        assert "not found" in str((await _standing(daemon, "hook"))["detail"])
        daemon.request_stop()


# --- email: a magic link ---------------------------------------------------------------


async def test_email_handshake_by_magic_link_binds_for_twelve_months(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeSmtp() as smtp:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            "  mail: {type: email, to: oncall@acme.example, smtp_url_env: SMTP_URL}\n"
        )
        settings = daemon_settings(tmp_path, fake_slack, config=config, SMTP_URL=smtp.url)
        daemon = await start_daemon(nursery, settings, verify=())
        started = await _start(daemon, "mail")
        assert started.status_code == 200, started.text
        assert "nonce" not in started.json() or started.json()["nonce"] is None
        [message] = await trio.to_thread.run_sync(smtp.wait_for, 1)
        text = message.get_body(("plain",))
        assert text is not None
        link = next(w for w in text.get_content().split() if "/verify/email/" in w)
        path = urlsplit(link).path
        async with _client(daemon) as client:
            wrong = await client.get("/verify/email/not-a-token")
            assert wrong.status_code == 400
            opened = await client.get(path)
            assert opened.status_code == 200, opened.text
            again = await client.get(path)
            assert again.status_code == 400  # a link works once
        row = await _standing(daemon, "mail")
        assert row["status"] == "live"
        assert row["verified_by"] == "email:oncall@acme.example"
        assert str(row["expires_at"])[:4] > str(row["handshake_at"])[:4]
        daemon.request_stop()


# --- PagerDuty: OAuth 2.0 with PKCE -----------------------------------------------------


@pytest.mark.parametrize("approve", [True, False])
async def test_pagerduty_handshake_by_oauth_pkce(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, approve: bool
) -> None:
    with FakeOAuth(redirect_uris=("http://localhost/oauth/pagerduty/callback",)) as oauth:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            "  pd:\n    type: pagerduty\n    routing_key_env: PD_KEY\n"
            f"    oauth_client_id: {oauth.client_id}\n"
            f"    oauth_authorize_url: {oauth.authorize_url}\n"
            f"    oauth_token_url: {oauth.token_url}\n"
            "    oauth_redirect_uri: http://localhost/oauth/pagerduty/callback\n"
        )
        settings = daemon_settings(tmp_path, fake_slack, config=config, PD_KEY="k" * 32)
        daemon = await start_daemon(nursery, settings, verify=())
        started = (await _start(daemon, "pd")).json()
        query = dict(parse_qsl(urlsplit(started["url"]).query))
        assert query["code_challenge_method"] == "S256"
        async with _client(daemon) as client:
            if approve:
                code = oauth.approve(query)
                callback = await client.get(
                    "/oauth/pagerduty/callback", params={"state": query["state"], "code": code}
                )
                assert callback.status_code == 200, callback.text
                assert (await _standing(daemon, "pd"))["status"] == "live"
            else:
                denied = await client.get(
                    "/oauth/pagerduty/callback",
                    params={"state": query["state"], "error": "access_denied"},
                )
                assert denied.status_code == 400
                assert (await _standing(daemon, "pd"))["status"] == "failed"
            unknown = await client.get(
                "/oauth/pagerduty/callback", params={"state": "forged", "code": "x"}
            )
            assert unknown.status_code == 400
        daemon.request_stop()


async def test_a_webhook_at_an_ip_address_cannot_be_verified_and_nothing_crashes(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = (
        "sinks:\n  slack: {type: slack}\n"
        "  hook: {type: webhook, url: 'https://192.0.2.10/hook', secret_env: HS}\n"
    )
    settings = daemon_settings(tmp_path, fake_slack, config=config, HS=new_secret())
    daemon = await start_daemon(nursery, settings, verify=())
    refused = await _start(daemon, "hook")
    assert refused.status_code == 400
    assert "IP address" in refused.json()["message"]
    assert daemon.supervisor.restarts == {}
    assert (await _start(daemon, "nope")).status_code == 404
    daemon.request_stop()
