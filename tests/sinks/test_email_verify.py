"""The email magic-link handshake: link -> redeem -> a 12-month binding."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from actors.sinks.base import Delivered
from actors.sinks.email.deliver import EmailSink
from actors.sinks.email.verify import (
    Binding,
    MagicLinkError,
    PendingBinding,
    binding_is_live,
    link_message,
    magic_link,
    new_token,
    redeem,
    token_hash,
)
from eyetok import guard
from eyetok.errors import ConfigError, EyeTokError
from eyetok.sinks.email import EmailSinkConfig
from tests.peers.smtp import FakeSmtp

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BASE = "https://eyetok.example.com"
CONFIG = EmailSinkConfig(tenant="acme", to="oncall@acme.example")
_LINK = re.compile(r"https://eyetok\.example\.com/verify/email/([A-Za-z0-9_-]+)")


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def issue(now: datetime = T0) -> tuple[str, dict[str, PendingBinding]]:
    token = new_token()
    entry = PendingBinding.issue(sink_id="mail", address=CONFIG.to, token=token, now=now)
    return token, {entry.token_hash: entry}


def test_a_token_is_32_random_bytes_and_only_its_hash_is_stored() -> None:
    token = new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 bytes, URL-safe, no padding
    assert new_token() != token
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    _, pending = issue()
    [entry] = pending.values()
    assert token not in msgspec.json.encode(entry).decode()


def test_link_then_redeem_binds_for_12_months() -> None:
    token, pending = issue()
    link = magic_link(BASE + "/", token)
    assert link == f"{BASE}/verify/email/{token}"
    clicked = T0 + timedelta(hours=3)
    used: set[str] = set()

    binding = redeem(link.rsplit("/", 1)[1], pending, now=clicked, used=used)

    assert binding == Binding(
        sink_id="mail",
        address=CONFIG.to,
        bound_at=clicked,
        expires_at=clicked + timedelta(days=365),
        nonce_hash=token_hash(token),
    )
    assert used == {token_hash(token)}
    assert binding_is_live(binding, clicked)
    assert binding_is_live(binding, clicked + timedelta(days=364))


def test_an_expired_link_is_refused() -> None:
    token, pending = issue()
    [entry] = pending.values()
    assert entry.link_expires_at == T0 + timedelta(hours=24)
    used: set[str] = set()
    with pytest.raises(MagicLinkError) as caught:
        redeem(token, pending, now=T0 + timedelta(hours=24), used=used)
    assert caught.value.reason == "expired"
    assert "expired" in str(caught.value)
    assert used == set()  # an expired click uses nothing up


@pytest.mark.parametrize("wrong", ["", "not-a-token", "issued-elsewhere"])
def test_an_unknown_or_wrong_token_is_refused(wrong: str) -> None:
    token, pending = issue()
    guess = new_token() if wrong == "issued-elsewhere" else wrong
    with pytest.raises(MagicLinkError) as caught:
        redeem(guess, pending, now=T0, used=set())
    assert caught.value.reason == "unknown"
    assert isinstance(caught.value, EyeTokError)
    # a near miss is as unknown as a stranger
    with pytest.raises(MagicLinkError, match="unknown"):
        redeem(token[:-1] + ("A" if token[-1] != "A" else "B"), pending, now=T0, used=set())


def test_a_used_token_cannot_be_redeemed_twice() -> None:
    token, pending = issue()
    used: set[str] = set()
    redeem(token, pending, now=T0 + timedelta(minutes=1), used=used)
    with pytest.raises(MagicLinkError) as caught:
        redeem(token, pending, now=T0 + timedelta(minutes=2), used=used)
    assert caught.value.reason == "used"


def test_a_binding_older_than_12_months_is_not_live() -> None:
    binding = Binding(sink_id="mail", address=CONFIG.to, bound_at=T0)
    assert binding.expires_at == T0 + timedelta(days=365)
    assert binding_is_live(binding, T0 + timedelta(days=365) - timedelta(seconds=1))
    assert not binding_is_live(binding, T0 + timedelta(days=365))
    assert not binding_is_live(binding, T0 + timedelta(days=400))
    assert not binding_is_live(binding, T0 - timedelta(seconds=1))  # not bound yet


def test_times_must_be_aware_and_base_urls_http() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PendingBinding(
            sink_id="m", address=CONFIG.to, token_hash="h", issued_at=T0.replace(tzinfo=None)
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        redeem(new_token(), {}, now=T0.replace(tzinfo=None), used=set())
    with pytest.raises(ConfigError) as caught:
        magic_link("javascript:alert(1)//", new_token())
    assert caught.value.field == "base_url"


def test_bindings_round_trip_through_storage() -> None:
    _, pending = issue()
    [entry] = pending.values()
    assert msgspec.json.decode(msgspec.json.encode(entry), type=PendingBinding) == entry
    binding = Binding(sink_id="mail", address=CONFIG.to, bound_at=T0, nonce_hash="ab")
    assert msgspec.json.decode(msgspec.json.encode(binding), type=Binding) == binding


def test_the_link_message_is_clean() -> None:
    token = new_token()
    link = magic_link(BASE, token)
    spec = link_message(CONFIG, link, expires_at=T0 + timedelta(hours=24), issued_at=T0)
    assert spec.to == CONFIG.to
    assert link in spec.text
    assert f'href="{link}"' in spec.html
    assert "2026-11-24 09:00 UTC" in spec.text
    assert spec.message_id.endswith("@eyetok>")
    assert token not in spec.message_id
    guard.check(msgspec.to_builtins(spec), tenant="acme", tenants=["acme", "globex"])


async def test_the_link_email_goes_through_the_sink_and_its_link_binds(
    fake_smtp: FakeSmtp,
) -> None:
    token, pending = issue()
    link = magic_link(BASE, token)
    [entry] = pending.values()
    spec = link_message(CONFIG, link, expires_at=entry.link_expires_at, issued_at=T0)
    sink = EmailSink(sink_id="mail", config=CONFIG, endpoint=fake_smtp.endpoint)

    outcome = await sink.send(spec, idempotency_key="verify-1")

    [message] = await fake_smtp.receive(1)
    assert outcome == Delivered(external_ref=spec.message_id)
    assert message["To"] == CONFIG.to
    assert message["Subject"] == "[EyeTok] Confirm that this address should receive alerts"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    [from_text] = _LINK.findall(text.get_content())
    [from_html] = set(_LINK.findall(html.get_content()))
    assert from_text == from_html == token
    # the recipient clicks: the token from the email binds the address
    binding = redeem(from_text, pending, now=T0 + timedelta(minutes=5), used=set())
    assert binding.address == CONFIG.to
    assert binding_is_live(binding, T0 + timedelta(days=200))
