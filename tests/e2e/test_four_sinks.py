"""One tenant, four sinks of its own, the real daemon in-process: a Slack workspace, a
Standard Webhooks endpoint, an SMTP server and a PagerDuty integration, each a local peer
on 127.0.0.1 that checks what it gets on its own (signatures, MIME, Events API v2 fields).

The tenant ``acme`` routes SEV1 to all four; the operator keeps its default Slack channels
and hears about dead deliveries in ``#eyetok-operator``. Every sink is first verified
through its real ownership handshake (Slack DM nonce, DNS TXT, magic link, OAuth PKCE),
as the delivery gate sends nothing to an unverified sink.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.sources import sentry
from eyetok.standard_webhooks import new_secret
from harness.peers.dns import FakeDns
from harness.peers.oauth import FakeOAuth
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.slack import FakeSlack
from harness.peers.webhook_receiver import Answer, WebhookReceiver
from tests.conftest import (
    FIXTURES,
    SECRET,
    daemon_settings,
    eventually,
    fixture_body,
    start_daemon,
)
from tests.peers.smtp import FakeSmtp
from tests.verify import ROOT_TOKEN, tenant_slack_token, tenant_team, verify_slack

ACME_SENTRY_SECRET = "acme-sentry-client-secret"
ACME_PD_KEY = "acmeR0utingKey0123456789abcdef00"  # 32 characters, as PagerDuty's are
ACME_MAIL = "oncall@acme.example"
ACME_CHANNEL = "acme-pager"  # the fake records channels without their '#'
OPERATOR_SEV1 = "raxx-ops-alert-SEV1"
OPERATOR_NOTICES = "eyetok-operator"
FATAL_ISSUE_ID = "6120447702"  # data.event.issue_id of event_alert_fatal.json
ACME_SINKS = ("acme-hook", "acme-mail", "acme-pd", "acme-slack")
WAIT_S = 15.0

OAUTH_REDIRECT = "http://localhost/oauth/pagerduty/callback"
AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
FAST_RETRY = "delivery: {max_age_s: 3, base_backoff_s: 0.05, max_backoff_s: 0.2}\n"


# --- the peers -----------------------------------------------------------------------


@pytest.fixture
def webhook_secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(webhook_secret: str) -> Iterator[WebhookReceiver]:
    with WebhookReceiver({"acme": webhook_secret}) as peer:
        yield peer


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as peer:
        yield peer


@pytest.fixture
def fake_pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_key=ACME_PD_KEY, strict_key_length=True) as peer:
        yield peer


@pytest.fixture
def fake_dns() -> Iterator[FakeDns]:
    with FakeDns() as peer:
        yield peer


@pytest.fixture
def fake_oauth() -> Iterator[FakeOAuth]:
    with FakeOAuth(redirect_uris=(OAUTH_REDIRECT,)) as peer:
        yield peer


@dataclass(frozen=True)
class Peers:
    slack: FakeSlack
    hook: WebhookReceiver
    smtp: FakeSmtp
    pd: FakePagerDuty
    webhook_secret: str
    dns: FakeDns  # the webhook's TXT handshake
    oauth: FakeOAuth  # the PagerDuty handshake

    @property
    def hook_url(self) -> str:
        """The receiver under a DNS name: an IP-literal URL has no domain to verify."""
        return self.hook.url.replace("127.0.0.1", "localhost")


@pytest.fixture
def peers(
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
    fake_smtp: FakeSmtp,
    fake_pd: FakePagerDuty,
    webhook_secret: str,
    fake_dns: FakeDns,
    fake_oauth: FakeOAuth,
) -> Peers:
    return Peers(fake_slack, receiver, fake_smtp, fake_pd, webhook_secret, fake_dns, fake_oauth)


# --- the daemon ----------------------------------------------------------------------


def _config(peers: Peers, *, delivery: str = "") -> str:
    return (
        f"""\
sinks:
  slack: {{type: slack, token_env: SLACK_BOT_TOKEN}}
  acme-slack: {{type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}}
  acme-hook: {{type: webhook, tenant: acme, url: "{peers.hook_url}", secret_env: ACME_WHSEC}}
  acme-mail: {{type: email, tenant: acme, to: {ACME_MAIL}, smtp_url_env: SMTP_URL}}
  acme-pd:
    type: pagerduty
    tenant: acme
    routing_key_env: ACME_PD_KEY
    oauth_client_id: {peers.oauth.client_id}
    oauth_authorize_url: {peers.oauth.authorize_url}
    oauth_token_url: {peers.oauth.token_url}
    oauth_redirect_uri: {OAUTH_REDIRECT}
tenants:
  acme:
    tier: team
    sentry_secret_env: ACME_SENTRY
    policy:
      routes:
        SEV1:
          - {{sink: acme-slack, target: "#{ACME_CHANNEL}"}}
          - {{sink: acme-hook, target: acme}}
          - {{sink: acme-mail, target: {ACME_MAIL}}}
          - {{sink: acme-pd, target: acme}}
verification: {{txt_every_s: 0.05, txt_for_s: 10}}
"""
        + delivery
    )


@asynccontextmanager
async def _running(tmp_path: Path, peers: Peers, *, delivery: str = "") -> AsyncIterator[Daemon]:
    """The real daemon, in-process, routing to ``peers``; stopped with ``request_stop()``
    on the way out, which waits until it has returned."""
    settings = daemon_settings(
        tmp_path / "data",
        peers.slack,
        config=_config(peers, delivery=delivery),
        ACME_SENTRY=ACME_SENTRY_SECRET,
        ACME_SLACK_TOKEN=tenant_slack_token(peers.slack, "acme"),
        ACME_WHSEC=peers.webhook_secret,
        SMTP_URL=peers.smtp.url,
        ACME_PD_KEY=ACME_PD_KEY,
        PAGERDUTY_EVENTS_URL=peers.pd.events_url,
        EYETOK_DNS_RESOLVER=f"127.0.0.1:{peers.dns.port}",
    )
    assert settings.configured_sinks() == sorted(("slack", *ACME_SINKS))
    # The daemon closes its sinks' HTTP clients when it returns (else their keep-alive
    # sockets would surface as unclosed-socket warnings in a later test).
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, settings, verify=())
        try:
            await _verify_sinks(daemon, peers)
            yield daemon
        finally:
            daemon.request_stop()


def _client(daemon: Daemon) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0)


async def _start_handshake(client: httpx.AsyncClient, sink_id: str) -> dict[str, Any]:
    started = await client.post(
        f"/api/v1/sinks/{sink_id}/verification", json={"requested_by": "tests"}, headers=AUTH
    )
    assert started.status_code == 200, started.text
    answer: dict[str, Any] = started.json()
    return answer


async def _deliverable(client: httpx.AsyncClient) -> set[str]:
    listed = await client.get("/api/v1/sinks", headers=AUTH)
    assert listed.status_code == 200, listed.text
    return {s["sink_id"] for s in listed.json()["sinks"] if s["deliverable"]}


async def _verify_sinks(daemon: Daemon, peers: Peers) -> None:
    """Every sink through its real ownership handshake; then the peers forget the
    handshake traffic (the magic-link mail) so that the tests count alerts only."""
    base_url = f"http://127.0.0.1:{daemon.bound_port}"
    # the nonce DM'd through the Events API, in the workspace of each sink's token
    await verify_slack(base_url, "slack")
    await verify_slack(base_url, "acme-slack", team=tenant_team("acme"))
    async with _client(daemon) as client:
        # webhook: the nonce in a TXT record at _eyetok-verify.<the URL's host>
        nonce = (await _start_handshake(client, "acme-hook"))["nonce"]
        peers.dns.set_txt("_eyetok-verify.localhost", nonce)

        # email: the magic link mailed to the address, opened
        await _start_handshake(client, "acme-mail")
        [link_mail] = await trio.to_thread.run_sync(peers.smtp.wait_for, 1, WAIT_S)
        text = link_mail.get_body(("plain",))
        assert text is not None
        link = next(w for w in text.get_content().split() if "/verify/email/" in w)
        opened = await client.get(urlsplit(link).path)
        assert opened.status_code == 200, opened.text

        # PagerDuty: OAuth authorization code with PKCE, approved by the account owner
        url = (await _start_handshake(client, "acme-pd"))["url"]
        query = dict(parse_qsl(urlsplit(url).query))
        code = peers.oauth.approve(query)
        callback = await client.get(
            "/oauth/pagerduty/callback", params={"state": query["state"], "code": code}
        )
        assert callback.status_code == 200, callback.text

        async def all_live() -> bool:
            return await _deliverable(client) == {"slack", *ACME_SINKS}

        await eventually(all_live, within=WAIT_S)
    peers.smtp.reset()
    assert peers.hook.deliveries == []
    assert peers.pd.events == []
    assert peers.slack.posts == []


async def _post(
    daemon: Daemon, path: str, body: bytes, *, secret: str, resource: str
) -> dict[str, Any]:
    headers = {
        "content-type": "application/json",
        "sentry-hook-signature": sentry.sign(body, secret),
        "sentry-hook-resource": resource,
    }
    async with _client(daemon) as client:
        response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _acme_fatal(daemon: Daemon) -> dict[str, Any]:
    opened = await _post(
        daemon,
        "/hooks/sentry/acme",
        fixture_body("event_alert_fatal"),
        secret=ACME_SENTRY_SECRET,
        resource="event_alert",
    )
    assert (opened["action"], opened["severity"], opened["sev_channel"]) == (
        "open",
        "critical",
        "SEV1",
    )
    return opened


def _resolve_body() -> bytes:
    """issue_resolved.json, about the fatal fixture's issue."""
    payload = json.loads((FIXTURES / "issue_resolved.json").read_text())
    payload["data"]["issue"]["id"] = FATAL_ISSUE_ID
    return json.dumps(payload).encode()


_COLUMNS = (
    "delivery_id",
    "tenant",
    "incident_id",
    "sink_id",
    "target",
    "action",
    "status",
    "attempts",
    "detail",
    "external_ref",
    "finished_at",
)


async def _notifications(daemon: Daemon) -> list[dict[str, Any]]:
    """The outbox rows (with their outcome) as the daemon's history has them now."""
    assert daemon.topology is not None
    assert daemon.store is not None
    await daemon.topology.flush_history()
    # (timestamps as epoch seconds: DuckDB needs pytz to hand out TIMESTAMPTZ values)
    columns = ", ".join("epoch(finished_at)" if c == "finished_at" else c for c in _COLUMNS)
    sql = f"SELECT {columns} FROM notifications ORDER BY planned_at, sink_id"
    rows = await daemon.store.read(lambda con: con.execute(sql).fetchall())
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


async def _settled(daemon: Daemon, expected: int) -> list[dict[str, Any]]:
    """The outbox once it has ``expected`` rows and none of them is pending."""
    rows: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal rows
        rows = await _notifications(daemon)
        return len(rows) >= expected and all(r["status"] != "pending" for r in rows)

    await eventually(done, within=WAIT_S)
    return rows


def _row(rows: list[dict[str, Any]], sink_id: str, action: str = "open") -> dict[str, Any]:
    [row] = [r for r in rows if r["sink_id"] == sink_id and r["action"] == action]
    return row


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


# --- the tests -----------------------------------------------------------------------


async def test_a_fatal_reaches_all_four_sinks_of_the_tenant(tmp_path: Path, peers: Peers) -> None:
    async with _running(tmp_path, peers) as daemon:
        opened = await _acme_fatal(daemon)
        incident_id = opened["incident_id"]

        [post] = await _in_thread(peers.slack.wait_for_posts, 1, WAIT_S)
        [hook] = await _in_thread(peers.hook.wait_for, 1, WAIT_S)
        [mail] = await _in_thread(peers.smtp.wait_for, 1, WAIT_S)
        [event] = await _in_thread(peers.pd.wait_for, 1, WAIT_S)
        rows = await _settled(daemon, 4)

        assert sorted(r["sink_id"] for r in rows) == list(ACME_SINKS)
        assert {(r["tenant"], r["incident_id"], r["status"]) for r in rows} == {
            ("acme", incident_id, "delivered")
        }

        # Slack: a top-level post in the routed channel, naming the incident.
        assert (post.channel, post.thread_ts) == (ACME_CHANNEL, None)
        assert incident_id in str(post.blocks)
        assert _row(rows, "acme-slack")["external_ref"] == post.ts

        # Webhook: signed (checked by the receiver on its own), keyed by the outbox row id,
        # one event in the body.
        hook_row = _row(rows, "acme-hook")
        assert hook.verified, hook.problem
        assert hook.verified_by == ("acme",)
        assert hook.webhook_id == hook_row["delivery_id"]
        assert hook.headers["content-type"] == "application/json"
        body = hook.json()
        assert isinstance(body, dict)
        assert set(body) == {"type", "timestamp", "data"}
        assert body["type"] == "incident.opened"
        assert body["data"]["incident_id"] == incident_id
        assert body["data"]["tenant"] == "acme"
        assert body["data"]["severity"] == "critical"
        assert body["data"]["sev_channel"] == "SEV1"
        assert len(peers.hook.by_id(hook_row["delivery_id"])) == 1

        # Email: text and HTML alternatives, Message-ID from the delivery id.
        mail_row = _row(rows, "acme-mail")
        assert mail["To"] == ACME_MAIL
        assert mail.get_content_type() == "multipart/alternative"
        plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert plain is not None
        assert html is not None
        assert incident_id in plain.get_content()
        assert incident_id in html.get_content()
        assert mail["Message-ID"] == f"<{mail_row['delivery_id']}@eyetok>"
        assert mail_row["external_ref"] == mail["Message-ID"]
        assert mail["Subject"].startswith("[SEV1] ")

        # PagerDuty: one valid trigger, critical, with the tenant-scoped dedup key.
        assert (event.routing_key, event.event_action) == (ACME_PD_KEY, "trigger")
        assert event.payload["severity"] == "critical"
        assert event.dedup_key
        assert event.body["dedup_key"] == event.dedup_key
        assert "acme" in event.dedup_key
        assert peers.pd.state(event.dedup_key) == "triggered"
        assert _row(rows, "acme-pd")["external_ref"] == event.dedup_key

        # Nothing went anywhere else: no operator channel, one of each.
        assert [p.channel for p in peers.slack.posts] == [ACME_CHANNEL]
        assert len(peers.hook.deliveries) == len(peers.smtp.messages) == len(peers.pd.events) == 1


async def test_resolving_the_incident_resolves_it_at_every_sink(
    tmp_path: Path, peers: Peers
) -> None:
    async with _running(tmp_path, peers) as daemon:
        opened = await _acme_fatal(daemon)
        incident_id = opened["incident_id"]
        [top] = await _in_thread(peers.slack.wait_for_posts, 1, WAIT_S)
        [trigger] = await _in_thread(peers.pd.wait_for, 1, WAIT_S)
        await _settled(daemon, 4)  # the first post's ts is the thread to reply in

        resolved = await _post(
            daemon,
            "/hooks/sentry/acme",
            _resolve_body(),
            secret=ACME_SENTRY_SECRET,
            resource="issue",
        )
        assert (resolved["action"], resolved["incident_id"]) == ("resolve", incident_id)

        _, reply = await _in_thread(peers.slack.wait_for_posts, 2, WAIT_S)
        _, resolve_event = await _in_thread(peers.pd.wait_for, 2, WAIT_S)
        _, resolve_hook = await _in_thread(peers.hook.wait_for, 2, WAIT_S)
        _, resolve_mail = await _in_thread(peers.smtp.wait_for, 2, WAIT_S)
        rows = await _settled(daemon, 8)
        assert all(r["status"] == "delivered" for r in rows), rows
        assert sorted(r["sink_id"] for r in rows if r["action"] == "resolve") == list(ACME_SINKS)

        # PagerDuty: the same alert, now resolved.
        assert resolve_event.event_action == "resolve"
        assert resolve_event.dedup_key == trigger.dedup_key
        assert resolve_event.applied
        assert peers.pd.state(trigger.dedup_key) == "resolved"
        assert peers.pd.history(trigger.dedup_key) == ["triggered", "resolved"]
        assert len(peers.pd.alerts) == 1

        # Webhook: incident.resolved for the same incident, under its own webhook-id.
        assert resolve_hook.verified, resolve_hook.problem
        body = resolve_hook.json()
        assert body["type"] == "incident.resolved"
        assert body["data"]["incident_id"] == incident_id
        assert body["data"]["status"] == "resolved"
        assert resolve_hook.webhook_id == _row(rows, "acme-hook", "resolve")["delivery_id"]

        # Slack: a reply in the incident's thread, in the same channel.
        assert (reply.channel, reply.thread_ts) == (ACME_CHANNEL, top.ts)
        assert reply.text.startswith("Resolved")

        # Email: a resolve message of its own.
        assert resolve_mail["Subject"].startswith("[resolved] ")
        assert resolve_mail["Message-ID"] == (
            f"<{_row(rows, 'acme-mail', 'resolve')['delivery_id']}@eyetok>"
        )


async def test_tenants_never_reach_each_others_sinks(tmp_path: Path, peers: Peers) -> None:
    async with _running(tmp_path, peers) as daemon:
        acme = await _acme_fatal(daemon)
        await _settled(daemon, 4)

        # The same Sentry issue, from the operator's own project: a separate incident.
        operator = await _post(
            daemon,
            "/hooks/sentry",
            fixture_body("event_alert_fatal"),
            secret=SECRET,
            resource="event_alert",
        )
        assert (operator["action"], operator["sev_channel"]) == ("open", "SEV1")
        assert operator["incident_id"] != acme["incident_id"]
        posts = await _in_thread(peers.slack.wait_for_posts, 2, WAIT_S)
        rows = await _settled(daemon, 5)

        # Every row is delivered and goes only to its own tenant's sinks.
        assert all(r["status"] == "delivered" for r in rows), rows
        by_tenant = {
            t: sorted(r["sink_id"] for r in rows if r["tenant"] == t) for t in ("acme", "operator")
        }
        assert by_tenant == {"acme": list(ACME_SINKS), "operator": ["slack"]}
        assert {r["incident_id"] for r in rows if r["tenant"] == "operator"} == {
            operator["incident_id"]
        }

        # The operator's alert is in the operator's SEV1 channel only; acme's in acme's only.
        channels = {p.channel: p for p in posts}
        assert sorted(channels) == sorted([ACME_CHANNEL, OPERATOR_SEV1])
        assert operator["incident_id"] in str(channels[OPERATOR_SEV1].blocks)
        assert acme["incident_id"] not in str(channels[OPERATOR_SEV1].blocks)
        assert acme["incident_id"] in str(channels[ACME_CHANNEL].blocks)
        assert operator["incident_id"] not in str(channels[ACME_CHANNEL].blocks)

        # acme's other three peers heard only acme's incident, once each.
        assert len(peers.hook.deliveries) == len(peers.smtp.messages) == len(peers.pd.events) == 1
        assert peers.hook.deliveries[0].json()["data"]["incident_id"] == acme["incident_id"]
        assert acme["incident_id"] in peers.smtp.messages[0].get_body(("plain",)).get_content()
        assert (
            peers.pd.events[0].body["payload"]["custom_details"]["incident_id"]
            == acme["incident_id"]
        )
        assert len(peers.slack.posts) == 2


async def test_one_sink_down_does_not_delay_the_other_three(tmp_path: Path, peers: Peers) -> None:
    peers.hook.fail_next(*[Answer.server_error()] * 1000)  # the endpoint is broken for good
    async with _running(tmp_path, peers, delivery=FAST_RETRY) as daemon:
        posted = time.monotonic()
        opened = await _acme_fatal(daemon)
        incident_id = opened["incident_id"]

        def left() -> float:
            return max(0.01, posted + 2.0 - time.monotonic())

        # The other three arrive within a couple of seconds while the webhook is retried.
        [post] = await _in_thread(peers.slack.wait_for_posts, 1, left())
        [mail] = await _in_thread(peers.smtp.wait_for, 1, left())
        [event] = await _in_thread(peers.pd.wait_for, 1, left())
        assert time.monotonic() - posted < 2.0
        assert post.channel == ACME_CHANNEL
        assert incident_id in mail.get_body(("plain",)).get_content()
        assert event.event_action == "trigger"
        first, *_ = await _in_thread(peers.hook.wait_for, 1, WAIT_S)
        assert first.status == 500
        assert first.verified

        # The webhook row ends dead (the fast-retry limits), the operator hears of it.
        rows = await _settled(daemon, 5)
        hook_row = _row(rows, "acme-hook")
        assert hook_row["status"] == "dead", hook_row
        assert hook_row["attempts"] >= 2
        assert hook_row["detail"].startswith("gave up at the maximum age")
        assert "HTTP 500" in hook_row["detail"]
        attempts = peers.hook.by_id(hook_row["delivery_id"])
        assert len(attempts) == hook_row["attempts"]
        assert {a.status for a in attempts} == {500}
        assert all(a.verified for a in attempts)
        # ... and the other three were done while it was still being retried.
        assert post.received_monotonic < attempts[-1].at
        assert event.at < attempts[-1].at
        for sink_id in ("acme-slack", "acme-mail", "acme-pd"):
            assert _row(rows, sink_id)["status"] == "delivered"
            assert _row(rows, sink_id)["finished_at"] < hook_row["finished_at"]

        [notice_row] = [r for r in rows if r["target"] == f"#{OPERATOR_NOTICES}"]
        assert (notice_row["tenant"], notice_row["sink_id"]) == ("operator", "slack")
        _, notice = await _in_thread(peers.slack.wait_for_posts, 2, WAIT_S)
        assert notice.channel == OPERATOR_NOTICES
        assert "Delivery dead" in notice.text
        assert incident_id in notice.text
        assert "acme" in notice.text
        assert _row(await _settled(daemon, 5), "slack")["status"] == "delivered"

        # Nothing of acme's reached the operator's alert channels.
        assert [p.channel for p in peers.slack.posts] == [ACME_CHANNEL, OPERATOR_NOTICES]
