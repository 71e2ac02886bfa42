"""The email sink against a real local SMTP server (aiosmtpd, tests/peers/smtp.py)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import msgspec
import pytest
import trio

from actors.sinks.base import Delivered, Permanent, Retry, Sink
from actors.sinks.email.deliver import EmailSink, build_message, classify
from actors.sinks.email.render import render
from eyetok import guard
from eyetok.errors import ConfigError
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)
from eyetok.sinks.email import EmailSinkConfig, SmtpEndpoint, parse_smtp_url
from tests.peers.smtp import FakeSmtp, TlsFiles, self_signed_cert, silent_port, unused_port

TO = "oncall@example.com"
T0 = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


# --- fixtures and builders ---------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    files = self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))
    if files is None:
        pytest.skip("no TLS test certificate: neither `cryptography` nor `openssl` is available")
    return files


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def incident(**changes: object) -> Incident:
    base = Incident(
        incident_id="inc_0001",
        tenant="acme",
        dedup_key="sentry:acme:db",
        title="Database unreachable",
        severity=Severity.CRITICAL,
        sev_channel=SevChannel.SEV1,
        rule="critical-db",
        status="open",
        opened_at=T0,
        last_seen_at=T0,
        event_count=1,
        url="https://sentry.example.com/issues/42/",
        culprit="db.connect",
        environment="production",
        project="api",
    )
    return msgspec.structs.replace(base, **changes)


def deliver(
    *,
    delivery_id: str = "dlv_0123456789abcdef01234567",
    action: IncidentAction = IncidentAction.OPEN,
    notice: str | None = None,
    **incident_changes: object,
) -> Deliver:
    return Deliver(
        delivery_id=delivery_id,
        tenant="acme",
        destination=Destination(sink_id="mail", sink_type="email", target=TO),
        incident=incident(**incident_changes),
        action=action,
        rule="critical-db",
        planned_at=T0,
        received_at=T0,
        notice=notice,
    )


def sink_for(
    fake: FakeSmtp,
    *,
    ssl_context: ssl.SSLContext | None = None,
    endpoint: SmtpEndpoint | None = None,
    timeout_s: float = 5.0,
) -> EmailSink:
    return EmailSink(
        sink_id="mail",
        config=EmailSinkConfig(to=TO, sender="alerts@eyetok.example", timeout_s=timeout_s),
        endpoint=endpoint or fake.endpoint,
        ssl_context=ssl_context,
    )


async def deliver_one(sink: EmailSink, d: Deliver) -> Delivered | Retry | Permanent:
    payload = sink.render(d, thread_ref=None)
    return await sink.send(payload, idempotency_key=d.delivery_id)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    # the wire has CRLF line ends; compare with the "\n" the renderer wrote
    text_content = text.get_content().replace("\r\n", "\n")
    html_content = html.get_content().replace("\r\n", "\n")
    return text_content, html_content


# --- delivery ---------------------------------------------------------------------------


async def test_a_delivery_arrives_with_text_and_html_parts(fake_smtp: FakeSmtp) -> None:
    sink = sink_for(fake_smtp)
    d = deliver(title="Database <db-1> unreachable from 192.0.2.17 & friends")
    outcome = await deliver_one(sink, d)

    [message] = await fake_smtp.receive(1)
    assert outcome == Delivered(external_ref="<dlv_0123456789abcdef01234567@eyetok>")
    assert message["Message-ID"] == "<dlv_0123456789abcdef01234567@eyetok>"
    assert message["Subject"] == "[SEV1] Database <db-1> unreachable from [ip] & friends"
    assert message["To"] == TO
    assert message["From"] == "alerts@eyetok.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    [received] = fake_smtp.received
    assert received.rcpt_tos == (TO,)
    assert received.mail_from == "alerts@eyetok.example"

    text, html = parts(message)
    assert "Database <db-1> unreachable from [ip] & friends" in text
    assert "critical (SEV1)" in text
    assert "https://sentry.example.com/issues/42/" in text
    assert "Waiting for a human ack" in text
    assert "Database &lt;db-1&gt; unreachable from [ip] &amp; friends" in html
    assert "<db-1>" not in html
    assert '<a href="https://sentry.example.com/issues/42/">' in html
    # no IP literal anywhere: not in the headers, the parts or the raw bytes on the wire
    assert b"192.0.2.17" not in received.raw
    for value in (message["Subject"], text, html):
        assert guard.ip_literals(value) == []


async def test_one_message_per_event_each_with_its_own_message_id(fake_smtp: FakeSmtp) -> None:
    sink = sink_for(fake_smtp)
    first = deliver(delivery_id="dlv_aaaaaaaaaaaaaaaaaaaaaaaa")
    again = deliver(
        delivery_id="dlv_bbbbbbbbbbbbbbbbbbbbbbbb",
        action=IncidentAction.UPDATE,
        event_count=7,
        escalation_recommended=SevChannel.SEV1,
    )
    assert isinstance(await deliver_one(sink, first), Delivered)
    assert isinstance(await deliver_one(sink, again), Delivered)
    messages = await fake_smtp.receive(2)
    assert [m["Message-ID"] for m in messages] == [
        "<dlv_aaaaaaaaaaaaaaaaaaaaaaaa@eyetok>",
        "<dlv_bbbbbbbbbbbbbbbbbbbbbbbb@eyetok>",
    ]
    assert messages[1]["Subject"] == "[SEV1] Database unreachable (seen again: 7 events)"
    text, _ = parts(messages[1])
    assert "escalation_recommended: SEV1" in text


async def test_a_resolve_says_resolved(fake_smtp: FakeSmtp) -> None:
    d = deliver(action=IncidentAction.RESOLVE, status="resolved", resolved_at=T0 + timedelta(1))
    assert isinstance(await deliver_one(sink_for(fake_smtp), d), Delivered)
    [message] = await fake_smtp.receive(1)
    assert message["Subject"] == "[resolved] Database unreachable"
    text, _ = parts(message)
    assert "Resolved:    Tue 24 Nov 09:30 EST (14:30 UTC)" in text


async def test_an_operator_notice_is_its_text(fake_smtp: FakeSmtp) -> None:
    notice = "Delivery dead: webhook for tenant acme\nafter 8 attempts (host 203.0.113.9)"
    assert isinstance(await deliver_one(sink_for(fake_smtp), deliver(notice=notice)), Delivered)
    [message] = await fake_smtp.receive(1)
    assert message["Subject"] == "[EyeTok] Delivery dead: webhook for tenant acme"
    text, html = parts(message)
    assert text.startswith("Delivery dead: webhook for tenant acme\nafter 8 attempts (host [ip])")
    assert "Database unreachable" not in text
    assert "after 8 attempts (host [ip])" in html


def test_render_is_pure_one_line_subject_and_passes_the_guard() -> None:
    d = deliver(title="line one\r\nBcc: victim@example.com", culprit="x" * 3000)
    spec = render(d)
    assert spec == render(d)
    assert "\n" not in spec.subject
    assert "\r" not in spec.subject
    assert len(spec.subject) <= 200
    assert spec.to == TO
    assert spec.message_id == "<dlv_0123456789abcdef01234567@eyetok>"
    guard.check(msgspec.to_builtins(spec), tenant="acme", tenants=["acme", "other-tenant"])
    # and the MIME it becomes carries that subject as one header
    built = build_message(spec, sender="alerts@eyetok.example")
    assert built["Subject"] == "[SEV1] line one Bcc: victim@example.com"
    assert built["Bcc"] is None


def test_a_javascript_link_is_not_rendered_as_a_link() -> None:
    spec = render(deliver(url="javascript:alert(1)"))
    assert "javascript:" not in spec.html
    assert "javascript:" not in spec.text


def test_the_sink_sends_to_its_configured_address_and_does_not_thread() -> None:
    sink = EmailSink(
        sink_id="mail",
        config=EmailSinkConfig(to=TO),
        endpoint=SmtpEndpoint(host="127.0.0.1", port=25),
    )
    redirected = msgspec.structs.replace(
        deliver(),
        destination=Destination(sink_id="mail", sink_type="email", target="evil@example.net"),
    )
    assert sink.render(redirected, thread_ref="ignored").to == TO
    assert sink.threads() is False
    assert sink.sink_type == "email"
    protocol_view: Sink = sink  # mypy checks the structural fit
    assert protocol_view.sink_id == "mail"


# --- failures, classified ------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_451_is_retry_then_550_is_permanent(fake_smtp: FakeSmtp, stage: str) -> None:
    fake_smtp.script(
        stage,  # type: ignore[arg-type]
        "451 4.7.1 Greylisted, try again later",
        "550 5.1.1 Mailbox unavailable",
    )
    sink = sink_for(fake_smtp)
    first = await deliver_one(sink, deliver())
    second = await deliver_one(sink, deliver())
    third = await deliver_one(sink, deliver())

    assert isinstance(first, Retry)
    assert "451" in first.reason
    assert isinstance(second, Permanent)
    assert "550" in second.reason
    assert "Mailbox unavailable" in second.reason
    assert isinstance(third, Delivered)
    assert len(fake_smtp.messages) == 1


async def test_a_refused_connection_is_retry() -> None:
    endpoint = SmtpEndpoint(host="127.0.0.1", port=unused_port())
    sink = EmailSink(sink_id="mail", config=EmailSinkConfig(to=TO), endpoint=endpoint)
    outcome = await sink.send(render(deliver()), idempotency_key="k")
    assert isinstance(outcome, Retry)
    assert "cannot reach the SMTP server" in outcome.reason


async def test_a_server_that_never_greets_times_out_as_retry() -> None:
    with silent_port() as port:
        endpoint = SmtpEndpoint(host="127.0.0.1", port=port)
        config = EmailSinkConfig(to=TO, timeout_s=0.3)
        sink = EmailSink(sink_id="mail", config=config, endpoint=endpoint)
        with trio.fail_after(5):
            outcome = await sink.send(render(deliver()), idempotency_key="k")
    assert outcome == Retry(reason="SMTP server timed out")


async def test_credentials_are_never_sent_without_tls(fake_smtp: FakeSmtp) -> None:
    endpoint = SmtpEndpoint(host="127.0.0.1", port=fake_smtp.port, username="u", password="pw")
    outcome = await deliver_one(sink_for(fake_smtp, endpoint=endpoint), deliver())
    assert isinstance(outcome, Permanent)
    assert "no TLS" in outcome.reason
    assert fake_smtp.messages == []
    assert fake_smtp.logins == []


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (smtplib.SMTPDataError(451, b"4.3.0 try later"), Retry),
        (smtplib.SMTPDataError(554, b"5.7.1 spam"), Permanent),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 not yours", "a@b.c"), Permanent),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")}), Permanent),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"mailbox busy")}), Retry),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), Permanent),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 temporary auth failure"), Retry),
        (smtplib.SMTPConnectError(421, b"too busy"), Retry),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), Retry),
        (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported"), Permanent),
        (ConnectionRefusedError(111, "Connection refused"), Retry),
        (ConnectionResetError(104, "Connection reset by peer"), Retry),
        (TimeoutError("timed out"), Retry),
        (OSError(101, "Network is unreachable"), Retry),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), Permanent),
        (ssl.SSLError(1, "wrong version number"), Retry),
    ],
)
def test_classify(exc: smtplib.SMTPException | OSError, verdict: type) -> None:
    assert isinstance(classify(exc), verdict)


def test_classify_scrubs_ip_literals_from_server_words() -> None:
    outcome = classify(smtplib.SMTPDataError(451, b"4.7.1 client 198.51.100.4 greylisted"))
    assert outcome == Retry(reason="SMTP message deferred: 451 4.7.1 client [ip] greylisted")


# --- TLS ------------------------------------------------------------------------------------


async def test_starttls_is_used_when_offered_and_login_follows(tls_files: TlsFiles) -> None:
    with FakeSmtp(mode="starttls", tls=tls_files, credentials=("eyetok", "s3cret")) as fake:
        sink = EmailSink.from_url(
            sink_id="mail",
            config=EmailSinkConfig(to=TO),
            smtp_url=fake.url,
            ssl_context=tls_files.client_context(),
        )
        assert isinstance(await deliver_one(sink, deliver()), Delivered)
        [received] = fake.received
    assert received.starttls
    assert received.tls
    assert received.login == "eyetok"
    assert fake.logins == [("eyetok", True)]


async def test_starttls_is_used_without_credentials_too(tls_files: TlsFiles) -> None:
    with FakeSmtp(mode="starttls", tls=tls_files) as fake:
        sink = sink_for(fake, ssl_context=tls_files.client_context())
        assert isinstance(await deliver_one(sink, deliver()), Delivered)
        [received] = fake.received
    assert received.starttls
    assert received.login is None


async def test_smtps_is_tls_from_the_first_byte(tls_files: TlsFiles) -> None:
    with FakeSmtp(mode="implicit", tls=tls_files, credentials=("eyetok", "s3cret")) as fake:
        assert fake.url.startswith("smtps://")
        sink = sink_for(fake, ssl_context=tls_files.client_context())
        assert isinstance(await deliver_one(sink, deliver()), Delivered)
        [received] = fake.received
    assert received.tls
    assert not received.starttls
    assert received.login == "eyetok"


async def test_an_untrusted_certificate_is_permanent(tls_files: TlsFiles) -> None:
    with FakeSmtp(mode="starttls", tls=tls_files) as fake:
        sink = sink_for(fake)  # the default context does not trust a self-signed cert
        outcome = await deliver_one(sink, deliver())
        assert fake.messages == []
    assert isinstance(outcome, Permanent)
    assert "not trusted" in outcome.reason


async def test_a_wrong_password_is_permanent(tls_files: TlsFiles) -> None:
    with FakeSmtp(mode="starttls", tls=tls_files, credentials=("eyetok", "s3cret")) as fake:
        endpoint = msgspec.structs.replace(fake.endpoint, password="wrong")
        sink = sink_for(fake, ssl_context=tls_files.client_context(), endpoint=endpoint)
        outcome = await deliver_one(sink, deliver())
        assert fake.messages == []
    assert isinstance(outcome, Permanent)
    assert "535" in outcome.reason
    assert "wrong" not in outcome.reason


# --- configuration --------------------------------------------------------------------------


def test_config_decodes_from_its_tag_and_rejects_unknown_keys() -> None:
    config = msgspec.convert({"type": "email", "to": TO}, EmailSinkConfig)
    assert config == EmailSinkConfig(to=TO)
    assert (config.tenant, config.sender, config.smtp_url_env, config.timeout_s) == (
        "operator",
        "eyetok@localhost",
        "SMTP_URL",
        15.0,
    )
    with pytest.raises(msgspec.ValidationError, match="unknown field `cc`"):
        msgspec.convert({"type": "email", "to": TO, "cc": TO}, EmailSinkConfig)


@pytest.mark.parametrize(
    "to", ["", "oncall", "oncall@", "@example.com", "a b@example.com", "x@[192.0.2.1]", "a@b\nc"]
)
def test_config_refuses_a_recipient_that_is_not_an_address(to: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EmailSinkConfig(to=to)
    assert caught.value.field == "to"


def test_config_names_other_bad_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        EmailSinkConfig(to=TO, sender="not an address")
    assert caught.value.field == "sender"
    with pytest.raises(ConfigError) as caught:
        EmailSinkConfig(to=TO, timeout_s=0)
    assert caught.value.field == "timeout_s"


def test_parse_smtp_url() -> None:
    assert parse_smtp_url("smtp://mail.example.com") == SmtpEndpoint(
        host="mail.example.com", port=587
    )
    assert parse_smtp_url("smtps://u%40x:p%3Aw@mail.example.com") == SmtpEndpoint(
        host="mail.example.com", port=465, username="u@x", password="p:w", implicit_tls=True
    )
    assert parse_smtp_url("smtp://127.0.0.1:2525/").port == 2525


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "mail.example.com:25",
        "smtp://",
        "smtp://user:hunter2@mail.example.com:99999",
        "smtp://user:hunter2@mail.example.com:port",
        "smtp://user@mail.example.com",
        "smtp://:hunter2@mail.example.com",
        "smtp://mail.example.com/inbox",
        "smtp://[::1",
    ],
)
def test_a_bad_smtp_url_is_a_config_error_that_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_smtp_url(url, field="ALERTS_SMTP_URL")
    assert caught.value.field == "ALERTS_SMTP_URL"
    assert "hunter2" not in str(caught.value)


def test_an_endpoint_never_shows_its_password() -> None:
    endpoint = parse_smtp_url("smtp://eyetok:hunter2@mail.example.com:2525")
    assert "hunter2" not in repr(endpoint)
    assert "hunter2" not in str(endpoint)
    assert "eyetok" in repr(endpoint)
