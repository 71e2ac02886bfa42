"""A plain SMTP mailbox on 127.0.0.1 for the drill harness: standard library only.

It speaks just enough RFC 5321 for EyeTok's email sink (``smtplib``): ``EHLO``/``HELO``,
``MAIL``, ``RCPT``, ``DATA``, ``RSET``, ``NOOP``, ``QUIT``; no STARTTLS and no AUTH, so
the sink's URL is ``smtp://127.0.0.1:PORT``. Every accepted message is parsed into an
:class:`email.message.EmailMessage` and kept. ``fail_all`` makes it answer ``DATA`` with
a temporary failure (421) — a mailbox that is down. The test suite's ``tests/peers/smtp``
(aiosmtpd, TLS, AUTH) checks the sink far harder; this one only has to be there.
"""

from __future__ import annotations

import email
import email.policy
import socketserver
from email.message import EmailMessage

from harness.peers.base import LocalServer, PeerServer, TrackedHandler

__all__ = ["Mailbox"]

_MAX_LINE = 64 * 1024
_MAX_MESSAGE = 4 * 1024 * 1024


class _Session(TrackedHandler):
    timeout = 30

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def _line(self) -> str | None:
        raw = self.rfile.readline(_MAX_LINE)
        if not raw:
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        mailbox = self.peer
        assert isinstance(mailbox, Mailbox)
        self._say("220 drill-mailbox ESMTP ready")
        rcpts: list[str] = []
        while (line := self._line()) is not None:
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 drill-mailbox")
            elif verb == "MAIL":
                rcpts = []
                self._say("250 OK")
            elif verb == "RCPT":
                rcpts.append(line.partition(":")[2].strip().strip("<>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._data(mailbox, rcpts)
                rcpts = []
            elif verb in ("RSET", "NOOP"):
                self._say("250 OK")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented here")

    def _data(self, mailbox: Mailbox, rcpts: list[str]) -> None:
        if not rcpts:
            self._say("503 RCPT first")
            return
        self._say("354 end with <CRLF>.<CRLF>")
        lines: list[bytes] = []
        size = 0
        while True:
            raw = self.rfile.readline(_MAX_LINE)
            if not raw or raw in (b".\r\n", b".\n"):
                break
            size += len(raw)
            if size <= _MAX_MESSAGE:
                lines.append(raw[1:] if raw.startswith(b"..") else raw)
        if mailbox.failing:
            self._say("421 the drill mailbox is down")
            return
        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mailbox._record(message)
        self._say("250 queued")


class Mailbox(LocalServer):
    """Thread-safe; use as a context manager or ``start()``/``stop()``."""

    label = "Mailbox"
    thread_name = "drill-mailbox"

    def __init__(self) -> None:
        super().__init__()
        self._messages: list[EmailMessage] = []
        self.failing = False

    def _bind(self) -> socketserver.TCPServer:
        return PeerServer(self, (self._host, self._port), _Session)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block (a worker thread, never the event loop) until ``n`` messages arrived."""
        with self._cond:
            self._until(lambda: len(self._messages) >= n, timeout)
            return list(self._messages)

    def reset(self) -> None:
        with self._cond:
            self._messages.clear()

    def _record(self, message: EmailMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
