"""Pending handshakes survive a restart (same data directory) and a fresh dyno (a new,
empty data directory, the same Postgres): the daemon in-process with its real actors,
the local Slack, SMTP, OAuth and DNS peers, and PostgreSQL on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import structlog
import trio

from actors.daemon import Daemon
from eyetok.config import Settings
from eyetok.standard_webhooks import new_secret
from harness.peers.dns import FakeDns
from harness.peers.oauth import FakeOAuth
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from tests.conftest import daemon_settings, eventually, start_daemon
from tests.e2e.daemon import DaemonProcess
from tests.peers.smtp import FakeSmtp
from tests.pg import query
from tests.verify import ROOT_TOKEN, slack_event_body, slack_headers

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
REDIRECT = "http://localhost/oauth/pagerduty/callback"
START_S = 60.0  # a cold `eyetok run` on a busy 2-core machine


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Daemon]:
    """One life of the daemon; leaving it stops the daemon and waits until it returned."""
    async with trio.open_nursery() as life:
        daemon = await start_daemon(life, settings, verify=())
        try:
            yield daemon
        finally:
            daemon.request_stop()


class Lives:
    """Two lives of the daemon: ``restart`` keeps the data directory; ``fresh_dyno``
    gives the second one a new, empty directory and the same Postgres."""

    def __init__(self, how: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.how = how
        self.tmp_path = tmp_path
        self.dsn: str | None = request.getfixturevalue("pg_dsn") if how == "fresh_dyno" else None

    def settings(self, life: int, slack: FakeSlack, config: str, **env: str) -> Settings:
        data = self.tmp_path / (f"dyno-{life}" if self.how == "fresh_dyno" else "data")
        if self.dsn is not None:
            env["DATABASE_URL"] = self.dsn
        return daemon_settings(data, slack, config=config, **env)

    async def mirrored(self, sink_type: str) -> None:
        """Fresh dyno: the first life goes only once its handshake is in Postgres (as
        a crash would find it: the drain's last mirror flush is not what we rely on)."""
        dsn = self.dsn
        if dsn is None:
            return

        async def there() -> bool:
            rows = await trio.to_thread.run_sync(
                lambda: query(
                    dsn,
                    "SELECT count(*) FROM pending_handshakes WHERE sink_type = %s",
                    (sink_type,),
                )
            )
            return bool(rows[0][0])

        await eventually(there)


@pytest.fixture(params=["restart", "fresh_dyno"])
def lives(request: pytest.FixtureRequest, tmp_path: Path) -> Lives:
    return Lives(request.param, tmp_path, request)


def _client(daemon: Daemon) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0)


async def _start(daemon: Daemon, sink_id: str) -> httpx.Response:
    async with _client(daemon) as client:
        return await client.post(
            f"/api/v1/sinks/{sink_id}/verification", json={"requested_by": "alice"}, headers=AUTH
        )


async def _standing(daemon: Daemon, sink_id: str) -> dict[str, Any]:
    async with _client(daemon) as client:
        listed = (await client.get("/api/v1/sinks", headers=AUTH)).json()["sinks"]
    found: dict[str, Any] = next((s for s in listed if s["sink_id"] == sink_id), {})
    return found


def _is(daemon: Daemon, sink_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await _standing(daemon, sink_id)).get("status") == status

    return check


async def _dm(daemon: Daemon, text: str, *, team: str = TEAM_ID) -> httpx.Response:
    body = slack_event_body(text, team=team)
    async with _client(daemon) as client:
        return await client.post("/slack/events", content=body, headers=slack_headers(body))


async def _open_handshakes(daemon: Daemon) -> list[tuple[str, str]]:
    assert daemon.topology is not None
    assert daemon.store is not None
    await daemon.topology.flush_history()
    return await daemon.store.read(
        lambda con: con.execute(
            "SELECT sink_id, handshake_json FROM handshakes WHERE event = 'opened' "
            "AND key NOT IN (SELECT key FROM handshakes WHERE event = 'closed')"
        ).fetchall()
    )


# --- Slack -----------------------------------------------------------------------------


async def test_a_slack_nonce_issued_before_a_restart_still_verifies(
    lives: Lives, fake_slack: FakeSlack
) -> None:
    settings = lives.settings(1, fake_slack, "")
    async with running(settings) as first:
        started = await _start(first, "slack")
        assert started.status_code == 200, started.text
        nonce = started.json()["nonce"]
        assert TEAM_ID in started.json()["message"]  # the workspace to DM it in
        [(sink_id, stored)] = await _open_handshakes(first)
        assert sink_id == "slack"
        assert nonce not in stored  # only its hash is kept
        await lives.mirrored("slack")

    async with running(lives.settings(2, fake_slack, "")) as second:
        assert (await _standing(second, "slack"))["status"] != "live"
        answer = await _dm(second, f"here: {nonce}")
        assert answer.status_code == 200
        await eventually(_is(second, "slack", "live"))
        row = await _standing(second, "slack")
        assert row["deliverable"] is True
        assert row["approved_by"] == "alice"
        assert row["workspace"] == TEAM_ID
        assert await _open_handshakes(second) == []
        # used once: the same nonce again matches nothing
        await _dm(second, nonce)
        await trio.sleep(0.1)
        assert (await _standing(second, "slack"))["status"] == "live"
    if lives.dsn is not None:
        left = await trio.to_thread.run_sync(
            lambda: query(str(lives.dsn), "SELECT count(*) FROM pending_handshakes")
        )
        assert left == [(0,)]


async def test_a_dm_from_another_workspace_does_not_verify_and_burns_the_nonce(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack), verify=())
    nonce = (await _start(daemon, "slack")).json()["nonce"]
    assert (await _dm(daemon, nonce, team="T0ELSEWHERE")).status_code == 200
    await eventually(_is(daemon, "slack", "failed"))
    row = await _standing(daemon, "slack")
    assert row["deliverable"] is False
    assert "T0ELSEWHERE" in row["detail"]
    assert TEAM_ID in row["detail"]
    await _dm(daemon, nonce)  # burnt: the right workspace afterwards does nothing
    await trio.sleep(0.1)
    assert (await _standing(daemon, "slack"))["status"] == "failed"
    daemon.request_stop()


async def test_a_nonce_that_matches_nothing_is_logged_never_silently_accepted(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack), verify=())
    stray = "ab" * 32
    with structlog.testing.capture_logs() as logs:
        assert (await _dm(daemon, f"is this it? {stray}")).status_code == 200  # else: retries
        async with _client(daemon) as client:
            link = await client.get("/verify/email/" + "x" * 43)
            assert link.status_code == 400
            assert "no such link" in link.text
            callback = await client.get(
                "/oauth/pagerduty/callback", params={"state": "forged-state", "code": "c"}
            )
            assert callback.status_code == 400
            assert "invalid_state" in callback.text

        async def three() -> bool:
            await trio.lowlevel.checkpoint()
            return len([e for e in logs if e["event"] == "handshake_unmatched"]) == 3

        await eventually(three)
    unmatched = [e for e in logs if e["event"] == "handshake_unmatched"]
    assert sorted(e["sink_type"] for e in unmatched) == ["email", "pagerduty", "slack"]
    assert {e["log_level"] for e in unmatched} == {"warning"}
    assert all(len(e["key_prefix"]) == 12 for e in unmatched)
    everything = repr(logs)
    assert stray not in everything  # never the secret, only a prefix of its hash
    assert "forged-state" not in everything
    daemon.request_stop()


# --- email -----------------------------------------------------------------------------


async def test_a_magic_link_sent_before_a_restart_still_binds(
    lives: Lives, fake_slack: FakeSlack
) -> None:
    config = (
        "sinks:\n  slack: {type: slack}\n"
        "  mail: {type: email, to: oncall@acme.example, smtp_url_env: SMTP_URL}\n"
    )
    with FakeSmtp() as smtp:
        async with running(lives.settings(1, fake_slack, config, SMTP_URL=smtp.url)) as first:
            assert (await _start(first, "mail")).status_code == 200
            [message] = await trio.to_thread.run_sync(smtp.wait_for, 1)
            text = message.get_body(("plain",))
            assert text is not None
            link = next(w for w in text.get_content().split() if "/verify/email/" in w)
            await lives.mirrored("email")

        async with running(lives.settings(2, fake_slack, config, SMTP_URL=smtp.url)) as second:
            async with _client(second) as client:
                opened = await client.get(urlsplit(link).path)
                assert opened.status_code == 200, opened.text
                again = await client.get(urlsplit(link).path)
                assert again.status_code == 400  # a link works once
            row = await _standing(second, "mail")
            assert row["status"] == "live"
            assert row["verified_by"] == "email:oncall@acme.example"


# --- PagerDuty OAuth with PKCE -----------------------------------------------------------


async def test_an_oauth_pkce_authorization_started_before_a_restart_completes(
    lives: Lives, fake_slack: FakeSlack
) -> None:
    with FakeOAuth(redirect_uris=(REDIRECT,)) as oauth:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            "  pd:\n    type: pagerduty\n    routing_key_env: PD_KEY\n"
            f"    oauth_client_id: {oauth.client_id}\n"
            f"    oauth_authorize_url: {oauth.authorize_url}\n"
            f"    oauth_token_url: {oauth.token_url}\n"
            f"    oauth_redirect_uri: {REDIRECT}\n"
        )
        async with running(lives.settings(1, fake_slack, config, PD_KEY="k" * 32)) as first:
            started = await _start(first, "pd")
            assert started.status_code == 200, started.text
            query_ = dict(parse_qsl(urlsplit(started.json()["url"]).query))
            [(_, stored)] = await _open_handshakes(first)
            assert query_["state"] not in stored  # the state is kept only as its hash
            assert json.loads(stored)["challenge"] == query_["code_challenge"]
            await lives.mirrored("pagerduty")

        code = oauth.approve(query_)  # the customer approves while EyeTok restarts
        async with running(lives.settings(2, fake_slack, config, PD_KEY="k" * 32)) as second:
            async with _client(second) as client:
                callback = await client.get(
                    "/oauth/pagerduty/callback", params={"state": query_["state"], "code": code}
                )
                assert callback.status_code == 200, callback.text
                replayed = await client.get(
                    "/oauth/pagerduty/callback", params={"state": query_["state"], "code": code}
                )
                assert replayed.status_code == 400
            row = await _standing(second, "pd")
            assert row["status"] == "live"
            assert row["verified_by"] == "pagerduty:oauth-pkce"


# --- webhook: a DNS TXT poll -------------------------------------------------------------


async def test_a_dns_txt_poll_in_progress_resumes_after_a_restart(
    lives: Lives, fake_slack: FakeSlack
) -> None:
    with FakeDns() as dns:
        config = (
            "sinks:\n  slack: {type: slack}\n"
            "  hook: {type: webhook, url: 'https://hooks.acme.example/x', secret_env: HS}\n"
            "verification: {txt_every_s: 0.1, txt_for_s: 60}\n"
        )
        env = {
            "HS": new_secret(),
            "EYETOK_DNS_RESOLVER": f"127.0.0.1:{dns.port}",
        }
        async with running(lives.settings(1, fake_slack, config, **env)) as first:
            nonce = (await _start(first, "hook")).json()["nonce"]
            await trio.sleep(0.3)  # polled, not there yet
            assert (await _standing(first, "hook"))["status"] == "pending"
            await lives.mirrored("webhook")

        dns.set_txt("_eyetok-verify.hooks.acme.example", nonce)  # published while down
        async with running(lives.settings(2, fake_slack, config, **env)) as second:
            await eventually(_is(second, "hook", "live"))
            assert "nonce found" in (await _standing(second, "hook"))["detail"]


# --- from outside: `eyetok run`, kill -9, a fresh dyno ----------------------------------


def test_kill_9_then_a_fresh_dyno_completes_the_slack_handshake(
    tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    env = {
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.base_url,
        "DATABASE_URL": pg_dsn,
    }
    first = DaemonProcess(tmp_path / "dyno-1", env).start(timeout=START_S)
    try:
        started = httpx.post(
            first.url + "/api/v1/sinks/slack/verification", headers=AUTH, timeout=10.0
        )
        assert started.status_code == 200, started.text
        nonce = started.json()["nonce"]
        stray = slack_event_body("cd" * 32)
        answered = httpx.post(
            first.url + "/slack/events", content=stray, headers=slack_headers(stray), timeout=10
        )
        assert answered.status_code == 200  # Slack's retries stop; the log says why
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            first.events("handshake_unmatched")
            and query(pg_dsn, "SELECT count(*) FROM pending_handshakes") == [(1,)]
        ):
            time.sleep(0.05)
        [unmatched] = first.events("handshake_unmatched")
        assert unmatched["sink_type"] == "slack"
    finally:
        first.kill()  # SIGKILL: no drain, no last flush; the dyno's disk is gone with it

    second = DaemonProcess(tmp_path / "dyno-2", env).start(timeout=START_S)
    try:
        [rehydrated] = second.events("rehydrated_from_postgres")
        assert rehydrated["handshakes"] == 1
        [resumed] = second.events("handshakes_resumed")
        assert resumed["slack"] == 1
        body = slack_event_body(f"my nonce {nonce}")
        sent = httpx.post(
            second.url + "/slack/events", content=body, headers=slack_headers(body), timeout=10
        )
        assert sent.status_code == 200
        deadline = time.monotonic() + 10
        deliverable = False
        while time.monotonic() < deadline and not deliverable:
            listed = httpx.get(second.url + "/api/v1/sinks", headers=AUTH, timeout=10).json()
            deliverable = any(s["sink_id"] == "slack" and s["deliverable"] for s in listed["sinks"])
            time.sleep(0.05)
        assert deliverable
    finally:
        assert second.terminate()[0] == 0
