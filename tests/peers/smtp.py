"""A real local SMTP server for tests: aiosmtpd on 127.0.0.1 in its own thread.

aiosmtpd runs its own asyncio loop in a daemon thread, so it serves a trio test (whose
sink calls smtplib from worker threads) without either loop knowing of the other.

    with FakeSmtp() as smtp:                      # plain SMTP on a free port
        ...send to smtp.endpoint / smtp.url ...
        smtp.wait_for(1)                          # blocks until one message arrived
        smtp.messages[0]["Subject"]               # parsed email.message.EmailMessage

    FakeSmtp(tls=cert, mode="starttls")           # offers STARTTLS (not required)
    FakeSmtp(tls=cert, mode="implicit")           # smtps: TLS from the first byte
    FakeSmtp(tls=cert, mode="starttls", credentials=("user", "pw"))   # AUTH after TLS

    smtp.script("rcpt", "451 4.7.1 Try again later", "550 5.1.1 Mailbox unavailable")
                                                  # the next RCPTs get these replies
    smtp.script("data", "452 4.3.1 Insufficient storage")

Each accepted message is also kept as a :class:`Received` (envelope, raw bytes, whether
the session was TLS / STARTTLS, who logged in) in ``smtp.received``.

:func:`self_signed_cert` makes a certificate for ``127.0.0.1``/``localhost`` with the
``cryptography`` package if it is installed, else the ``openssl`` command; it returns
None when neither is available (skip only the TLS tests then).
:func:`unused_port` is a port with nothing listening (connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from eyetok.sinks.email import SmtpEndpoint
from harness.peers.base import Startable

__all__ = [
    "FakeSmtp",
    "Received",
    "TlsFiles",
    "self_signed_cert",
    "silent_port",
    "unused_port",
]

Stage = Literal["mail", "rcpt", "data"]
Mode = Literal["plain", "starttls", "implicit"]
RECEIVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server fully (chain and host name) against this one cert."""
        return ssl.create_default_context(cafile=str(self.cert))


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool  # the session was encrypted when DATA arrived (STARTTLS or implicit)
    starttls: bool  # ... because the client said STARTTLS
    login: str | None  # the user name that authenticated, if any


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_cert(directory: Path) -> TlsFiles | None:
    """A one-day self-signed cert for IP 127.0.0.1 and DNS localhost, or None when neither
    ``cryptography`` nor ``openssl`` is available."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem")
    try:
        _cert_with_cryptography(files)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            return None
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(files.key), "-out", str(files.cert), "-days", "1",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return files


def _cert_with_cryptography(files: TlsFiles) -> None:
    import ipaddress

    # optional: not a dependency (tests fall back to the openssl command)
    from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found, unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found, unused-ignore]
        ec,
    )
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found, unused-ignore]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class _Controller(Controller):
    """aiosmtpd's Controller on port 0: learns the port the OS chose before its
    start-up self-check connects."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self._fake = fake

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if reply := self._fake._scripted("mail"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if reply := self._fake._scripted("rcpt"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if reply := self._fake._scripted("data"):
            return reply
        raw = envelope.original_content or b""
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data if session.authenticated else None
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._fake._record(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=message,
                tls=tls,
                starttls=session.ssl is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class FakeSmtp(Startable):
    """A real SMTP server on 127.0.0.1 (a free port) that records what it accepts."""

    def __init__(
        self,
        *,
        mode: Mode = "plain",
        tls: TlsFiles | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode!r} needs TlsFiles (see self_signed_cert)")
        self.mode = mode
        self.tls = tls
        self.credentials = credentials
        self.host = "127.0.0.1"
        self.received: list[Received] = []
        self.logins: list[tuple[str, bool]] = []  # (user name, accepted) per AUTH attempt
        self._scripts: dict[Stage, deque[str]] = {s: deque() for s in ("mail", "rcpt", "data")}
        self._cond = threading.Condition()
        kwargs: dict[str, Any] = {"server_hostname": "fake-smtp.localhost"}
        if mode == "starttls":
            assert tls is not None
            kwargs |= {"tls_context": tls.server_context(), "require_starttls": False}
        elif mode == "implicit":
            assert tls is not None
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here the socket is TLS anyway
            kwargs |= {"ssl_context": tls.server_context(), "auth_require_tls": False}
        if credentials is not None:
            kwargs["authenticator"] = self._authenticate  # offered after TLS only
        self._controller = _Controller(_Handler(self), hostname=self.host, port=0, **kwargs)
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeSmtp:
        self._controller.start()
        self.port = int(self._controller.port)
        return self

    def stop(self) -> None:
        self._controller.stop()

    # --- where it is -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``smtp[s]://[user:pass@]127.0.0.1:port`` for :func:`parse_smtp_url`."""
        scheme = "smtps" if self.mode == "implicit" else "smtp"
        who = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{who}{self.host}:{self.port}"

    @property
    def endpoint(self) -> SmtpEndpoint:
        user, password = self.credentials or (None, None)
        return SmtpEndpoint(
            host=self.host,
            port=self.port,
            username=user,
            password=password,
            implicit_tls=self.mode == "implicit",
        )

    # --- what arrived ------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            return [r.message for r in self.received]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least ``n`` messages arrived; the first ``n``. Raises
        TimeoutError. (From a trio test: :meth:`receive`.)"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {n} messages after {timeout}s")
                self._cond.wait(left)
            return [r.message for r in self.received[:n]]

    async def receive(self, n: int) -> list[EmailMessage]:
        """The first ``n`` messages, waiting (trio) up to ``RECEIVE_TIMEOUT_S`` for them."""
        with trio.fail_after(RECEIVE_TIMEOUT_S):
            while True:
                with self._cond:
                    if len(self.received) >= n:
                        return [r.message for r in self.received[:n]]
                await trio.sleep(0.01)

    # --- scripting -----------------------------------------------------------------------

    def script(self, stage: Stage, *replies: str) -> None:
        """Answer the next MAIL/RCPT/DATA commands with ``replies`` ("451 ..."), in order;
        after them the server accepts again."""
        for reply in replies:
            code = reply[:3]
            if not (code.isdigit() and code[0] in "45"):
                raise ValueError(f"a scripted reply is a 4xx/5xx line, not {reply!r}")
        with self._cond:
            self._scripts[stage].extend(replies)

    def reset(self) -> None:
        with self._cond:
            self.received.clear()
            self.logins.clear()
            for queue in self._scripts.values():
                queue.clear()

    # --- called from aiosmtpd's thread ----------------------------------------------------

    def _scripted(self, stage: Stage) -> str | None:
        with self._cond:
            queue = self._scripts[stage]
            return queue.popleft() if queue else None

    def _record(self, received: Received) -> None:
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        ok = (user, auth_data.password.decode("utf-8", "replace")) == self.credentials
        with self._cond:
            self.logins.append((user, ok))
        return AuthResult(success=ok, auth_data=user if ok else None, handled=False)


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (into the backlog) but never says anything:
    an SMTP client waiting for the greeting times out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])
