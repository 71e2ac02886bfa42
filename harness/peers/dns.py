"""A small authoritative DNS server over UDP on 127.0.0.1, for the webhook sink's TXT
handshake. Built on dnspython's message API; answers from a mutable ``records`` dict.

* a name in ``records``: its TXT values for a TXT question (NOERROR, empty answer for any
  other type: dnspython's ``NoAnswer``);
* a name not in ``records``: NXDOMAIN;
* a name in ``servfail``: SERVFAIL (dnspython's ``NoNameservers``);
* ``silent = True``: no answer at all (the client times out).

Every answer is authoritative. Thread-safe: tests mutate ``records`` through
:meth:`set_txt` / :meth:`clear` while the server thread answers. ``queries`` counts
questions received; ``answered`` counts answers sent (a test that must change a record
*between* two lookups waits for ``answered``).

    with FakeDns() as dns_peer:
        dns_peer.set_txt("_eyetok-verify.hooks.acme.example", nonce)
        await lookup_txt(name, nameserver=dns_peer.host, port=dns_peer.port)
"""

from __future__ import annotations

import contextlib
import socket
import socketserver

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from harness.peers.base import LocalServer

__all__ = ["FakeDns"]

TTL = 60
_MAX_STRING = 255  # one TXT character-string holds at most 255 bytes


def _key(name: str | dns.name.Name) -> str:
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text.lower().rstrip(".")


def _quoted(value: str) -> str:
    """A TXT value in zone-file syntax, split into <=255-byte strings."""
    raw = value.encode("utf-8")
    chunks = [raw[i : i + _MAX_STRING] for i in range(0, len(raw), _MAX_STRING)] or [b""]
    parts = []
    for chunk in chunks:
        escaped = "".join(
            f"\\{b:03d}" if b < 0x20 or b > 0x7E or b in (0x22, 0x5C) else chr(b) for b in chunk
        )
        parts.append(f'"{escaped}"')
    return " ".join(parts)


class _Server(socketserver.UDPServer):
    max_packet_size = 65535  # a whole datagram, whatever its size

    def __init__(self, fake: FakeDns, address: tuple[str, int]) -> None:
        self.fake = fake
        super().__init__(address, _Question)


class _Question(socketserver.BaseRequestHandler):
    """One datagram, answered on the server's thread."""

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        wire, sock = self.request
        server.fake._reply(wire, sock, self.client_address)


class FakeDns(LocalServer):
    label = "FakeDns"
    thread_name = "fake-dns-{port}"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self._records: dict[str, list[str]] = {}
        self._servfail: set[str] = set()
        self.silent = False
        self._queries = 0
        self._answered = 0

    def _bind(self) -> socketserver.TCPServer:
        return _Server(self, (self._host, self._port))

    # -- records --------------------------------------------------------------

    @property
    def records(self) -> dict[str, list[str]]:
        """A copy of the zone: name (lower-case, no final dot) -> TXT values."""
        with self._cond:
            return {name: list(values) for name, values in self._records.items()}

    def set_txt(self, name: str, *values: str) -> None:
        """Make ``name`` exist with these TXT values (none: exists, no TXT)."""
        with self._cond:
            self._records[_key(name)] = list(values)

    def clear(self, name: str) -> None:
        """Remove ``name``: it answers NXDOMAIN again."""
        with self._cond:
            self._records.pop(_key(name), None)
            self._servfail.discard(_key(name))

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for ``name`` until :meth:`clear`."""
        with self._cond:
            self._servfail.add(_key(name))

    @property
    def queries(self) -> int:
        with self._cond:
            return self._queries

    @property
    def answered(self) -> int:
        with self._cond:
            return self._answered

    def wait_answered(self, n: int, timeout: float = 5.0) -> bool:
        """Block (real time) until ``n`` answers have been sent."""
        return self._until(lambda: self._answered >= n, timeout)

    # -- serving --------------------------------------------------------------

    def _reply(self, wire: bytes, sock: socket.socket, peer: tuple[str, int]) -> None:
        with self._cond:
            self._queries += 1
        response = self._answer(wire)
        if response is None:
            return
        with contextlib.suppress(OSError):
            sock.sendto(response, peer)
        with self._cond:
            self._answered += 1
            self._cond.notify_all()

    def _answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        key = _key(question.name)
        with self._cond:
            servfail = key in self._servfail
            values = None if key not in self._records else list(self._records[key])
        if servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and values:
            response.answer.append(
                dns.rrset.from_text(
                    question.name,
                    TTL,
                    dns.rdataclass.IN,
                    dns.rdatatype.TXT,
                    *(_quoted(v) for v in values),
                )
            )
        return response.to_wire()
