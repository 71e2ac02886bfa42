"""The webhook sink's ownership handshake: a DNS TXT record holding a nonce.

EyeTok draws a nonce (:func:`new_nonce`), stores only its hash (:func:`nonce_hash`), and
asks the owner to publish the nonce as a TXT record at ``_eyetok-verify.<host>``, where
``<host>`` is the host of the sink's URL (:func:`record_name`). :func:`poll_txt` then
looks the record up at once and every ``every_s`` until it holds the nonce or ``for_s``
has passed. Proof for one domain is never proof for another: the name is derived from
the URL, never given by the owner, so a record at ``evil.example`` cannot verify
``https://hooks.acme.example/...``. A record holding another nonce does not verify.

Lookups use dnspython's async stub resolver on trio: ``dns.asyncresolver.Resolver``
(unconfigured: no ``/etc/resolv.conf``) with the one nameserver given, and
``backend=dns.asyncbackend.get_backend("trio")`` so its sockets and timeouts are trio's.

Exceptions::

    EyeTokError
    +-- DnsLookupError   a TXT lookup failed for another reason than "no such record"
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

import msgspec
import trio

from actors.sinks.webhook.config import (
    DNS_TIMEOUT_S,
    TXT_POLL_EVERY_S,
    TXT_POLL_FOR_S,
    VERIFY_LABEL,
)
from eyetok.errors import EyeTokError

_TRY_TIMEOUT_S = 2.0  # one query to the nameserver (dnspython's own default)


def nameserver(configured: tuple[str, int] | None) -> tuple[str, int]:
    """Where TXT records are looked up: ``configured`` (EYETOK_DNS_RESOLVER), else the
    host's resolver, read at the first lookup that needs it (:func:`_system_resolver`)."""
    return configured if configured is not None else _system_resolver()


@functools.cache
def _system_resolver() -> tuple[str, int]:
    """The first nameserver of the host's resolver configuration (/etc/resolv.conf).

    Read here, at the first DNS TXT handshake, re-check or DKIM lookup, not when the
    daemon starts: dnspython (about 2 MB RSS) is loaded by a daemon that looks a record
    up, not by every daemon (issue 20)."""
    import dns.resolver

    try:
        return (str(dns.resolver.Resolver().nameservers[0]), 53)
    except (dns.resolver.NoResolverConfiguration, IndexError):
        return ("127.0.0.1", 53)


class DnsLookupError(EyeTokError):
    """A TXT lookup failed (timeout, SERVFAIL, refused, unreachable nameserver ...)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"TXT lookup of {name} failed: {problem}")
        self.name = name
        self.problem = problem


class TxtVerdict(msgspec.Struct, frozen=True, kw_only=True):
    verified: bool
    checks: int  # lookups made, the first one included
    detail: str


def new_nonce() -> str:
    """16 random bytes, hex: what the owner publishes."""
    return secrets.token_hex(16)


def nonce_hash(nonce: str) -> str:
    """SHA-256 hex of a nonce: the only form of it EyeTok stores."""
    return hashlib.sha256(nonce.strip().encode("utf-8")).hexdigest()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def record_name(url_or_domain: str) -> str:
    """``_eyetok-verify.<host>`` for a sink URL (its host) or a bare domain.

    Raises ``ValueError`` for an IP literal (no DNS name to prove) or a malformed host.
    Non-ASCII hosts come back in their IDNA (``xn--``) form.
    """
    text = url_or_domain.strip()
    host = urlsplit(text).hostname if "://" in text else text
    if not host:
        raise ValueError(f"no host in {url_or_domain!r}")
    host = host.lower().rstrip(".")
    if _is_ip(host):
        raise ValueError(f"{host} is an IP address: there is no domain to verify")
    import dns.exception
    import dns.name

    try:
        name = dns.name.from_text(f"{VERIFY_LABEL}.{host}")
    except dns.exception.DNSException as exc:
        raise ValueError(f"{host!r} is not a domain name: {exc}") from exc
    return name.to_text(omit_final_dot=True)


async def lookup_txt(
    name: str, *, nameserver: str, port: int = 53, timeout_s: float = DNS_TIMEOUT_S
) -> list[str]:
    """The TXT values at ``name`` (each record's strings joined), asked of ``nameserver``
    (an IP address) only. No such name or no TXT there: ``[]``. Anything else raises
    :class:`DnsLookupError`. ``timeout_s`` bounds the whole lookup, retries included.
    dnspython is loaded here, by the first webhook sink's check, not by every daemon."""
    import dns.asyncbackend
    import dns.asyncresolver
    import dns.exception
    import dns.name
    import dns.rdatatype
    import dns.rdtypes.ANY.TXT
    import dns.resolver

    if not _is_ip(nameserver):
        raise ValueError(f"nameserver must be an IP address, not {nameserver!r}")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [nameserver]
    resolver.port = port
    resolver.timeout = min(_TRY_TIMEOUT_S, timeout_s)  # one try; a lost datagram is re-asked
    resolver.lifetime = timeout_s  # dnspython reads this on the wall clock ...
    resolver.cache = None
    # ... and each try's timeout on trio's: bound the whole lookup on trio's clock too, so
    # it ends after timeout_s of trio time whatever clock runs (a MockClock included).
    with trio.move_on_after(timeout_s) as bound:
        try:
            answer = await resolver.resolve(
                dns.name.from_text(name),
                dns.rdatatype.TXT,
                search=False,
                backend=dns.asyncbackend.get_backend("trio"),
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            raise DnsLookupError(name, f"no answer within {timeout_s:g}s") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsLookupError(name, f"the nameserver failed: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise DnsLookupError(name, f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise DnsLookupError(name, f"cannot reach {nameserver}:{port}: {exc}") from exc
    if bound.cancelled_caught:
        raise DnsLookupError(name, f"no answer within {timeout_s:g}s")
    return [
        b"".join(rdata.strings).decode("utf-8", errors="replace")
        for rdata in answer
        if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
    ]


def holds_nonce(values: Iterable[str], expected_hash: str) -> bool:
    """Whether one TXT value is the nonce whose hash is ``expected_hash``."""
    found = False
    for value in values:  # every value is compared: the time taken does not tell which
        found |= hmac.compare_digest(nonce_hash(value), expected_hash)
    return found


async def poll_txt(
    name: str,
    nonce: str,
    *,
    nameserver: str,
    port: int = 53,
    every_s: float = TXT_POLL_EVERY_S,
    for_s: float = TXT_POLL_FOR_S,
    timeout_s: float = DNS_TIMEOUT_S,
) -> TxtVerdict:
    """Look ``name`` up now and every ``every_s`` (trio time) until a TXT value there is
    ``nonce`` (verified) or ``for_s`` has passed (failed): :func:`poll_txt_hash` with the
    nonce's hash. Checks happen at
    ``0, every_s, 2*every_s, ...`` up to and including ``for_s``, so a poll that never
    succeeds makes ``floor(for_s / every_s) + 1`` checks. A failed lookup counts as a
    check and the poll goes on."""
    return await poll_txt_hash(
        name,
        nonce_hash(nonce),
        nameserver=nameserver,
        port=port,
        every_s=every_s,
        for_s=for_s,
        timeout_s=timeout_s,
    )


async def poll_txt_hash(
    name: str,
    expected: str,
    *,
    nameserver: str,
    port: int = 53,
    every_s: float = TXT_POLL_EVERY_S,
    for_s: float = TXT_POLL_FOR_S,
    timeout_s: float = DNS_TIMEOUT_S,
) -> TxtVerdict:
    """:func:`poll_txt` knowing only the nonce's hash ``expected`` (what is stored: a
    poll resumed after a restart has nothing else)."""
    if not (math.isfinite(every_s) and every_s > 0):
        raise ValueError("every_s must be positive")
    if not (math.isfinite(for_s) and for_s >= 0):
        raise ValueError("for_s must be >= 0")
    start = trio.current_time()
    checks = 0
    while True:
        checks += 1
        try:
            values = await lookup_txt(name, nameserver=nameserver, port=port, timeout_s=timeout_s)
        except DnsLookupError as exc:
            last = f"nonce not found at {name} after {checks} checks (last lookup: {exc.problem})"
        else:
            if holds_nonce(values, expected):
                return TxtVerdict(
                    verified=True,
                    checks=checks,
                    detail=f"nonce found at {name} after {checks} checks",
                )
            if values:
                last = (
                    f"wrong nonce at {name}: {len(values)} TXT record(s), none holds the nonce "
                    f"(nonce not found after {checks} checks)"
                )
            else:
                last = f"nonce not found at {name} after {checks} checks"
        if checks * every_s > for_s:
            return TxtVerdict(verified=False, checks=checks, detail=last)
        await trio.sleep_until(start + checks * every_s)
