"""Rotating a webhook secret, an email DKIM key and a PagerDuty refresh token: success,
failure and one-command rollback for each, against the local peers (webhook receiver
checking Standard Webhooks signatures itself, fake DNS, aiosmtpd, fake OAuth with PKCE)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import dkim
import pytest
import trio

from actors.daemon import Daemon
from eyetok.rotation.sealing import Sealer, new_key
from eyetok.standard_webhooks import new_secret
from harness.peers.dns import FakeDns
from harness.peers.oauth import FakeOAuth
from harness.peers.slack import FakeSlack
from harness.peers.webhook_receiver import WebhookReceiver
from tests.conftest import daemon_settings, eventually, start_daemon
from tests.peers.smtp import FakeSmtp
from tests.rotation.helpers import (
    AUTH,
    alert,
    audit,
    client,
    roll_back,
    rotate,
    standing,
    stored_versions,
    until_status,
)

MAIL = "oncall@eyetok.example"
REDIRECT = "http://localhost/oauth/pagerduty/callback"


class Peers:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.secret = new_secret()
        self.key = new_key()
        self.dns = FakeDns()
        self.hook = WebhookReceiver({"old": self.secret})
        self.smtp = FakeSmtp()
        self.oauth = FakeOAuth(redirect_uris=(REDIRECT,))

    def __enter__(self) -> Peers:
        for peer in (self.dns, self.hook, self.smtp, self.oauth):
            peer.start()
        return self

    def __exit__(self, *_: object) -> None:
        for peer in (self.oauth, self.smtp, self.hook, self.dns):
            peer.stop()

    def config(self) -> str:
        hook_url = self.hook.url.replace("127.0.0.1", "localhost")
        routes = f"[{{sink: hook, target: ops}}, {{sink: mail, target: {MAIL}}}]"
        return f"""\
sinks:
  slack: {{type: slack}}
  hook: {{type: webhook, url: "{hook_url}", secret_env: HOOK_SECRET}}
  mail: {{type: email, to: {MAIL}, sender: alerts@eyetok.example, smtp_url_env: SMTP_URL}}
  pd:
    type: pagerduty
    routing_key_env: PD_KEY
    oauth_client_id: {self.oauth.client_id}
    oauth_authorize_url: {self.oauth.authorize_url}
    oauth_token_url: {self.oauth.token_url}
    oauth_redirect_uri: {REDIRECT}
tenants:
  operator:
    tier: operator
    policy:
      routes:
        SEV2: {routes}
        SEV2.5: {routes}
verification: {{txt_every_s: 0.05, txt_for_s: 3}}
"""


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    with Peers(tmp_path) as running:
        yield running


@asynccontextmanager
async def running(nursery: trio.Nursery, peers: Peers, slack: FakeSlack) -> AsyncIterator[Daemon]:
    settings = daemon_settings(
        peers.tmp / "data",
        slack,
        config=peers.config(),
        HOOK_SECRET=peers.secret,
        SMTP_URL=peers.smtp.url,
        PD_KEY="R0UTINGKEY0000000000000000000000",
        EYETOK_SECRETS_KEY=peers.key,
        EYETOK_DNS_RESOLVER=f"127.0.0.1:{peers.dns.port}",
    )
    async with trio.open_nursery() as life:  # exits once the daemon has stopped
        daemon = await start_daemon(life, settings)
        try:
            yield daemon
        finally:
            daemon.request_stop()


async def _handshake(daemon: Daemon, sink_id: str) -> dict[str, object]:
    async with client(daemon) as c:
        started = await c.post(
            f"/api/v1/sinks/{sink_id}/verification", json={"requested_by": "t"}, headers=AUTH
        )
    assert started.status_code == 200, started.text
    answer: dict[str, object] = started.json()
    return answer


async def _verify_hook(daemon: Daemon, peers: Peers) -> None:
    nonce = (await _handshake(daemon, "hook"))["nonce"]
    peers.dns.set_txt("_eyetok-verify.localhost", str(nonce))
    await until_status(daemon, "hook", "live")


async def _verify_mail(daemon: Daemon, peers: Peers) -> None:
    await _handshake(daemon, "mail")
    [link_mail] = await trio.to_thread.run_sync(peers.smtp.wait_for, 1, 10.0)
    text = link_mail.get_body(("plain",))
    assert text is not None
    link = next(w for w in text.get_content().split() if "/verify/email/" in w)
    async with client(daemon) as c:
        assert (await c.get(urlsplit(link).path)).status_code == 200
    await until_status(daemon, "mail", "live")
    peers.smtp.reset()


async def _authorize(daemon: Daemon, peers: Peers, url: str, *, deny: bool = False) -> None:
    query = dict(parse_qsl(urlsplit(url).query))
    params = {"state": query["state"], "error": "access_denied"}
    if not deny:
        params = {"state": query["state"], "code": peers.oauth.approve(query)}
    async with client(daemon) as c:
        await c.get("/oauth/pagerduty/callback", params=params)


async def _opened(daemon: Daemon, peers: Peers, sink_id: str) -> dict[int, dict[str, str]]:
    """The sink's stored versions, opened with the key (what a fresh process would read)."""
    assert daemon.store is not None
    rows = await daemon.store.read(
        lambda con: con.execute(
            "SELECT version, sealed FROM sink_credential_versions WHERE sink_id = ? "
            "AND sealed IS NOT NULL",
            [sink_id],
        ).fetchall()
    )
    sealer = Sealer(peers.key)
    return {version: sealer.open(sealed, what="test") for version, sealed in rows}


# --- webhook -------------------------------------------------------------------------


async def test_webhook_rotation_signs_with_both_secrets_and_rolls_back(
    nursery: trio.Nursery, peers: Peers, fake_slack: FakeSlack
) -> None:
    async with running(nursery, peers, fake_slack) as daemon:
        await _verify_hook(daemon, peers)
        peers.dns.clear("_eyetok-verify.localhost")

        rotated = await rotate(daemon, "hook", "webhook")
        assert rotated.status_code == 200, rotated.text
        answer = rotated.json()
        new = answer["secret"]
        assert new.startswith("whsec_")
        assert new != peers.secret
        assert (await standing(daemon, "hook"))["deliverable"] is False
        stored = await _opened(daemon, peers, "hook")
        assert stored == {1: {"secret": peers.secret}, 2: {"secret": new}}

        # the TXT handshake again; then deliveries carry a signature by each secret
        peers.dns.set_txt("_eyetok-verify.localhost", answer["handshake"]["nonce"])
        await until_status(daemon, "hook", "live")
        peers.hook.set_secrets({"new": new, "old": peers.secret})
        await alert(daemon, issue="8001")
        [delivery] = await trio.to_thread.run_sync(peers.hook.wait_for, 1, 10.0)
        assert len(delivery.signatures) == 2
        assert set(delivery.verified_by) == {"new", "old"}

        # a rotation whose handshake never passes: one command puts the secret back
        peers.dns.clear("_eyetok-verify.localhost")
        again = await rotate(daemon, "hook", "webhook")
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 3
        await until_status(daemon, "hook", "failed")  # TXT never published (txt_for_s)
        back = await roll_back(daemon, "hook")
        assert back.status_code == 200, back.text
        assert back.json()["version"] == 2
        await until_status(daemon, "hook", "live")
        assert await stored_versions(daemon, "hook") == [
            (1, "previous", True),
            (2, "current", True),
            (3, "rolled_back", False),
        ]
        peers.hook.set_secrets({"new": new})
        await alert(daemon, issue="8002")
        second = (await trio.to_thread.run_sync(peers.hook.wait_for, 2, 10.0))[1]
        assert "new" in second.verified_by  # signed with version 2 again


# --- email: DKIM ---------------------------------------------------------------------


def _dns_of(peers: Peers):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        values = peers.dns.records.get(name.decode().rstrip(".").lower())
        return values[0].encode() if values else None

    return lookup


async def _verified_then_rotated(daemon: Daemon, peers: Peers) -> dict[str, str]:
    """The mail sink verified (magic link), then its DKIM key rotated: the record to publish."""
    await _verify_mail(daemon, peers)
    rotated = await rotate(daemon, "mail", "email")
    assert rotated.status_code == 200, rotated.text
    record: dict[str, str] = rotated.json()["publish"]
    return record


async def test_email_rotation_publishes_the_dkim_key_before_the_switch_and_rolls_back(
    nursery: trio.Nursery, peers: Peers, fake_slack: FakeSlack
) -> None:
    async with running(nursery, peers, fake_slack) as daemon:
        record = await _verified_then_rotated(daemon, peers)
        assert record["name"].endswith("._domainkey.eyetok.example")
        assert record["value"].startswith("v=DKIM1; k=rsa; p=")
        await trio.sleep(0.3)  # not published: no switch, the gate holds mail
        assert await stored_versions(daemon, "mail") == [(1, "pending", True)]
        assert (await standing(daemon, "mail"))["deliverable"] is False

        peers.dns.set_txt(record["name"], record["value"])
        await until_status(daemon, "mail", "live")
        assert await stored_versions(daemon, "mail") == [(1, "current", True)]
        await alert(daemon, issue="8101")
        await trio.to_thread.run_sync(peers.smtp.wait_for, 1, 10.0)
        raw = peers.smtp.received[0].raw
        assert raw.startswith(b"DKIM-Signature:")
        assert dkim.verify(raw, dnsfunc=_dns_of(peers))

        # the next key is never published: it fails, and rollback keeps the first key
        again = await rotate(daemon, "mail", "email")
        assert again.status_code == 200, again.text
        await until_status(daemon, "mail", "failed")
        back = await roll_back(daemon, "mail")
        assert back.status_code == 200, back.text
        await until_status(daemon, "mail", "live")
        assert await stored_versions(daemon, "mail") == [
            (1, "current", True),
            (2, "rolled_back", False),
        ]
        await alert(daemon, issue="8102")
        await trio.to_thread.run_sync(peers.smtp.wait_for, 2, 10.0)
        assert dkim.verify(peers.smtp.received[1].raw, dnsfunc=_dns_of(peers))
        assert f"s={record['name'].split('.')[0]};".encode() in peers.smtp.received[1].raw


# --- PagerDuty: a new refresh token through PKCE -----------------------------------------


async def test_pagerduty_rotation_takes_a_new_refresh_token_and_rolls_back(
    nursery: trio.Nursery, peers: Peers, fake_slack: FakeSlack
) -> None:
    async with running(nursery, peers, fake_slack) as daemon:
        await _authorize(daemon, peers, str((await _handshake(daemon, "pd"))["url"]))
        await until_status(daemon, "pd", "live")

        rotated = await rotate(daemon, "pd", "pagerduty")
        assert rotated.status_code == 200, rotated.text
        assert (await standing(daemon, "pd"))["deliverable"] is False
        await _authorize(daemon, peers, rotated.json()["handshake"]["url"])
        await until_status(daemon, "pd", "live")

        # the rotation closes (the next one is accepted) with the new token stored
        again = await rotate(daemon, "pd", "pagerduty")
        assert again.status_code == 200, again.text
        tokens = await _opened(daemon, peers, "pd")
        first, second = tokens[1]["refresh_token"], tokens[2]["refresh_token"]
        assert first != second
        assert peers.oauth.is_active(second)

        # the account owner refuses the third authorization: failed, then rolled back
        await _authorize(daemon, peers, again.json()["handshake"]["url"], deny=True)
        await until_status(daemon, "pd", "failed")
        back = await roll_back(daemon, "pd")
        assert back.status_code == 200, back.text
        assert back.json()["version"] == 2
        await until_status(daemon, "pd", "live")
        assert [state for _, state, _ in await stored_versions(daemon, "pd")] == [
            "previous",
            "current",
            "rolled_back",
        ]
        events = [event for event, _ in await audit(daemon, "credential_rotation")]
        assert events == [
            "credential_rotation_started",
            "credential_rotation_done",
            "credential_rotation_started",
            "credential_rotation_rolled_back",
        ]
        assert "pdus+" not in str(await audit(daemon, ""))


async def test_two_rotations_at_once_are_refused(
    nursery: trio.Nursery, peers: Peers, fake_slack: FakeSlack
) -> None:
    async with running(nursery, peers, fake_slack) as daemon:
        await _verify_hook(daemon, peers)
        first = await rotate(daemon, "hook", "webhook")
        assert first.status_code == 200
        for sink, kind in (("mail", "email"), ("pd", "pagerduty"), ("hook", "webhook")):
            refused = await rotate(daemon, sink, kind)
            assert refused.status_code == 409, refused.text
            assert "sink 'hook'" in refused.json()["error"]
        assert (await roll_back(daemon, "mail")).status_code == 409  # not the open one
        assert (await roll_back(daemon, "hook")).status_code == 200
        assert (await rotate(daemon, "mail", "email")).status_code == 200


async def test_an_email_rotation_waiting_for_its_record_survives_a_restart(
    nursery: trio.Nursery, peers: Peers, fake_slack: FakeSlack
) -> None:
    async with running(nursery, peers, fake_slack) as daemon:
        record = await _verified_then_rotated(daemon, peers)
    async with running(nursery, peers, fake_slack) as daemon:  # same data directory
        assert (await standing(daemon, "mail"))["deliverable"] is False
        peers.dns.set_txt(record["name"], record["value"])
        await until_status(daemon, "mail", "live")
        assert await stored_versions(daemon, "mail") == [(1, "current", True)]

        async def done() -> bool:
            events = [event for event, _ in await audit(daemon, "credential_rotation")]
            return events == ["credential_rotation_started", "credential_rotation_done"]

        await eventually(done)
