"""The email sink signs its mail with DKIM (dkimpy), verified as a receiver would: the
signature checked against the TXT record the rotation publishes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dkim
import pytest

from actors.sinks.email.deliver import EmailSink
from actors.sinks.email.dkim import DkimKey
from eyetok.errors import ConfigError
from eyetok.rotation.material import dkim_material, dkim_record
from eyetok.sinks.email import EmailSinkConfig
from tests.peers.smtp import FakeSmtp
from tests.sinks.test_email import TO, deliver, deliver_one

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def _dns(records: dict[str, str]):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        found = records.get(name.decode().rstrip("."))
        return found.encode() if found is not None else None

    return lookup


async def test_mail_is_signed_and_verifies_against_the_published_key(
    fake_smtp: FakeSmtp,
) -> None:
    material = dkim_material("eyetok.example", NOW, 2)
    config = EmailSinkConfig(
        to=TO, sender="alerts@eyetok.example", dkim_selector=material["selector"], dkim_key_env="K"
    )
    sink = EmailSink.from_url(
        sink_id="mail", config=config, smtp_url=fake_smtp.url, dkim_key=material["private_key"]
    )
    assert sink.dkim is not None
    assert material["private_key"] not in repr(sink.dkim)
    await deliver_one(sink, deliver())
    [received] = fake_smtp.received
    assert received.raw.startswith(b"DKIM-Signature:")
    name, value = dkim_record(material)
    assert name == "eyetok20261204v2._domainkey.eyetok.example"
    assert dkim.verify(received.raw, dnsfunc=_dns({name: value}))
    # another key under the same selector does not verify it
    other = dkim_record(dkim_material("eyetok.example", NOW, 2))[1]
    assert not dkim.verify(received.raw, dnsfunc=_dns({name: other}))


async def test_without_a_key_mail_goes_unsigned(fake_smtp: FakeSmtp) -> None:
    config = EmailSinkConfig(to=TO, sender="alerts@eyetok.example")
    sink = EmailSink.from_url(sink_id="mail", config=config, smtp_url=fake_smtp.url)
    await deliver_one(sink, deliver())
    [received] = fake_smtp.received
    assert b"DKIM-Signature" not in received.raw


def test_a_selector_needs_its_key_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        EmailSinkConfig(to=TO, dkim_selector="s1")
    assert caught.value.field == "dkim_key_env"


def test_the_key_never_shows_in_repr() -> None:
    key = DkimKey(selector="s", domain="d.example", private_key="-----BEGIN SECRET")
    assert "SECRET" not in repr(key)
