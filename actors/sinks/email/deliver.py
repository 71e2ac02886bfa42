"""Email delivery: ``smtplib`` in worker threads (never on the event loop), one SMTP session
per message. Every failure is classified here, in one function (:func:`classify`).

The session: connect (``smtps``: TLS from the first byte), EHLO, STARTTLS when the server
offers it (then EHLO again), LOGIN when the URL has credentials (only over TLS: a server
that offers no TLS gets no password), MAIL/RCPT/DATA, QUIT. Once the server has accepted
the message the delivery counts as done, whatever QUIT answers, so a slow goodbye cannot
cause a duplicate.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

import trio

from actors.sinks.base import Delivered, Outcome, Permanent, Retry
from actors.sinks.email.config import RATE_PER_RECIPIENT, WORKER_THREADS
from actors.sinks.email.dkim import DkimKey
from actors.sinks.email.render import EmailMessageSpec, one_line, render
from eyetok.guard import scrub
from eyetok.messages import Deliver
from eyetok.sinks.email import EmailSinkConfig, SmtpEndpoint, is_address, parse_smtp_url
from eyetok.tls import system_context

__all__ = ["EmailSink", "build_message", "classify"]

_REASON_MAX = 300
_WHAT_WAS_REFUSED: tuple[tuple[type[smtplib.SMTPResponseException], str], ...] = (
    (smtplib.SMTPConnectError, "greeting"),
    (smtplib.SMTPHeloError, "EHLO"),
    (smtplib.SMTPAuthenticationError, "login"),
    (smtplib.SMTPSenderRefused, "sender"),
    (smtplib.SMTPDataError, "message"),
)


def _say(text: bytes | str) -> str:
    """A server's or library's words, fit for a log line and an operator notice: decoded,
    one line, IP literals scrubbed, cut short."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return scrub(one_line(text, _REASON_MAX))


def classify(exc: smtplib.SMTPException | OSError) -> Retry | Permanent:
    """The verdict on a failed SMTP attempt.

    4xx replies, a dropped connection, timeouts and network errors may succeed later;
    5xx replies (550 mailbox unavailable, 535 bad credentials ...), an untrusted TLS
    certificate and a server lacking what we need (AUTH) will not.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        detail = "; ".join(f"{code} {_say(words)}" for code, words in replies) or "no reply"
        if not replies or any(not 500 <= code < 600 for code, _ in replies):
            return Retry(reason=f"SMTP recipient deferred: {detail}")
        return Permanent(reason=f"SMTP recipient refused: {detail}")
    if isinstance(exc, smtplib.SMTPResponseException):
        what = next((w for kind, w in _WHAT_WAS_REFUSED if isinstance(exc, kind)), "command")
        detail = f"{exc.smtp_code} {_say(exc.smtp_error)}"
        if 500 <= exc.smtp_code < 600:
            return Permanent(reason=f"SMTP {what} refused: {detail}")
        return Retry(reason=f"SMTP {what} deferred: {detail}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout
            return Retry(reason="SMTP server timed out")
        return Retry(reason=f"SMTP server closed the connection: {_say(str(exc))}")
    if isinstance(exc, smtplib.SMTPException):
        # SMTPNotSupportedError, "No suitable authentication method found", ...
        return Permanent(reason=f"SMTP server cannot do what this sink needs: {_say(str(exc))}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Permanent(
            reason="SMTP server's TLS certificate is not trusted: "
            + _say(getattr(exc, "verify_message", None) or str(exc))
        )
    if isinstance(exc, TimeoutError):
        return Retry(reason="SMTP server timed out")
    if isinstance(exc, ssl.SSLError):
        words = getattr(exc, "reason", None) or str(exc)
        return Retry(reason=f"TLS with the SMTP server failed: {_say(words)}")
    return Retry(reason=f"cannot reach the SMTP server: {_say(exc.strerror or str(exc))}")


def build_message(spec: EmailMessageSpec, *, sender: str) -> EmailMessage:
    """MIME: multipart/alternative with the plain text first and the HTML second."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = spec.to
    message["Subject"] = spec.subject
    message["Message-ID"] = spec.message_id
    if spec.date is not None:
        message["Date"] = format_datetime(spec.date)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message.set_content(spec.text)
    message.add_alternative(spec.html, subtype="html")
    return message


def _close(smtp: smtplib.SMTP, *, polite: bool) -> None:
    """QUIT if the server is still talking to us, then close; never raises."""
    try:
        if polite:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


class EmailSink:
    """One recipient address over one SMTP server. ``send`` runs smtplib in a worker
    thread under a :class:`trio.CapacityLimiter`; it never raises for an SMTP failure."""

    sink_type = "email"

    def __init__(
        self,
        *,
        sink_id: str,
        config: EmailSinkConfig,
        endpoint: SmtpEndpoint,
        ssl_context: ssl.SSLContext | None = None,
        rate: float | None = RATE_PER_RECIPIENT,
        limiter: trio.CapacityLimiter | None = None,
        dkim: DkimKey | None = None,
    ) -> None:
        self.sink_id = sink_id
        self.dkim = dkim
        self.config = config
        self.endpoint = endpoint
        self.rate_per_target: float | None = rate if rate is not None and rate > 0 else None
        # the system's store, the process's one such context (eyetok/tls.py), made at the
        # first TLS connection (none for a sink the configuration never sends through)
        self._ssl_context = ssl_context
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(WORKER_THREADS)

    @classmethod
    def from_url(
        cls,
        *,
        sink_id: str,
        config: EmailSinkConfig,
        smtp_url: str,
        ssl_context: ssl.SSLContext | None = None,
        rate: float | None = RATE_PER_RECIPIENT,
        limiter: trio.CapacityLimiter | None = None,
        dkim_key: str | None = None,
    ) -> EmailSink:
        """The sink for ``config``, its server read from ``smtp_url`` (the value of
        ``config.smtp_url_env``; a bad URL is a ConfigError naming that variable)."""
        return cls(
            sink_id=sink_id,
            config=config,
            endpoint=parse_smtp_url(smtp_url, field=config.smtp_url_env),
            ssl_context=ssl_context,
            rate=rate,
            limiter=limiter,
            dkim=DkimKey(
                selector=config.dkim_selector, domain=config.dkim_domain, private_key=dkim_key
            )
            if config.dkim_selector is not None and dkim_key
            else None,
        )

    def threads(self) -> bool:
        return False

    async def aclose(self) -> None:
        """Nothing to release: every send opens and closes its own connection."""

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> EmailMessageSpec:
        # Always the configured (verified) address: a route's target cannot redirect mail.
        return render(deliver, to=self.config.to)

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        """Send one message. The Message-ID (from the delivery id) is the external ref;
        SMTP has no idempotency key, so a retry re-sends the same Message-ID."""
        if not isinstance(payload, EmailMessageSpec):
            raise TypeError(f"EmailSink sends EmailMessageSpec, not {type(payload).__name__}")
        if not is_address(payload.to):
            return Permanent(reason=f"not an email address: {_say(payload.to)}")
        try:
            message = build_message(payload, sender=self.config.sender)
        except ValueError as exc:  # a header the email package refuses
            return Permanent(reason=f"cannot build the message: {_say(str(exc))}")
        return await trio.to_thread.run_sync(
            self._transmit, message, payload, limiter=self._limiter
        )

    # --- in the worker thread ---------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else system_context()

    def _connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        if endpoint.implicit_tls:
            return smtplib.SMTP_SSL(
                endpoint.host,
                endpoint.port,
                timeout=self.config.timeout_s,
                context=self._tls(),
            )
        return smtplib.SMTP(endpoint.host, endpoint.port, timeout=self.config.timeout_s)

    def _transmit(self, message: EmailMessage, spec: EmailMessageSpec) -> Outcome:
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            return classify(exc)
        polite = True
        try:
            return self._session(smtp, message, spec)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
            return classify(exc)  # the server answered: it can still hear QUIT
        except (smtplib.SMTPException, OSError) as exc:
            polite = False
            return classify(exc)
        finally:
            _close(smtp, polite=polite)

    def _session(
        self, smtp: smtplib.SMTP, message: EmailMessage, spec: EmailMessageSpec
    ) -> Outcome:
        endpoint = self.endpoint
        smtp.ehlo_or_helo_if_needed()
        tls = endpoint.implicit_tls
        if not tls and smtp.has_extn("starttls"):
            smtp.starttls(context=self._tls())
            smtp.ehlo_or_helo_if_needed()  # starttls() forgets the first EHLO
            tls = True
        if endpoint.username:
            if not tls:
                return Permanent(
                    reason="SMTP server offers no TLS; refusing to send credentials in clear"
                )
            smtp.login(endpoint.username, endpoint.password or "")
        if self.dkim is not None:
            signed = self.dkim.sign(message)
            refused = smtp.sendmail(self.config.sender, [spec.to], signed)
        else:
            refused = smtp.send_message(message, from_addr=self.config.sender, to_addrs=[spec.to])
        if refused:
            return classify(smtplib.SMTPRecipientsRefused(refused))
        return Delivered(external_ref=spec.message_id)
