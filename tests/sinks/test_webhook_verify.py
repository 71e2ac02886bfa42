"""The webhook sink's DNS TXT handshake against a local authoritative DNS server
(harness/peers/dns.py) on 127.0.0.1.

Polling runs on a MockClock, but every lookup is real UDP I/O to the peer's thread. With
``autojump_threshold=0`` (pytest-trio's ``autojump_clock``) trio jumps to the next
deadline the instant it waits on a socket, which is the lookup's own timeout: the lookup
"times out" before the peer has answered (and dnspython, whose lifetime is on the wall
clock, used to re-ask in a hot loop). :func:`io_clock` therefore jumps only after trio
has been idle for 50 ms of real time: a local answer arrives well within that, the
poll intervals (minutes of mock time) still pass in milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from actors.sinks.webhook.verify import (
    DnsLookupError,
    TxtVerdict,
    holds_nonce,
    lookup_txt,
    new_nonce,
    nonce_hash,
    poll_txt,
    record_name,
)
from harness.peers.dns import FakeDns

SINK_URL = "https://Hooks.Acme.Example:8443/eyetok/hook?x=1"
NAME = "_eyetok-verify.hooks.acme.example"


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
def dns_peer() -> Iterator[FakeDns]:
    with FakeDns() as peer:
        yield peer


async def poll(dns_peer: FakeDns, name: str, nonce: str, **kwargs: float) -> TxtVerdict:
    return await poll_txt(name, nonce, nameserver=dns_peer.host, port=dns_peer.port, **kwargs)


# -- pure helpers ---------------------------------------------------------------------


def test_nonces_are_fresh_hex_and_only_hashes_are_kept() -> None:
    first, second = new_nonce(), new_nonce()
    assert len(first) == 32
    int(first, 16)
    assert first != second
    assert nonce_hash(first) == hashlib.sha256(first.encode()).hexdigest()
    assert holds_nonce(["v=other", first], nonce_hash(first))
    assert not holds_nonce([second], nonce_hash(first))
    assert not holds_nonce([], nonce_hash(first))


def test_the_record_name_comes_from_the_sink_urls_host() -> None:
    assert record_name(SINK_URL) == NAME
    assert record_name("hooks.acme.example") == NAME
    assert record_name("hooks.acme.example.") == NAME
    assert record_name("https://bücher.example/") == "_eyetok-verify.xn--bcher-kva.example"
    for unverifiable in ("https://192.0.2.17/hook", "http://[2001:db8::1]/", "https:///x", ""):
        with pytest.raises(ValueError):  # noqa: PT011
            record_name(unverifiable)


# -- lookups --------------------------------------------------------------------------


async def test_lookup_returns_the_txt_values(dns_peer: FakeDns) -> None:
    long_value = "v" * 300  # more than one 255-byte TXT string: joined back together
    dns_peer.set_txt(NAME, "first", 'with "quotes" and \\', long_value)
    values = await lookup_txt(NAME, nameserver=dns_peer.host, port=dns_peer.port)
    assert sorted(values) == sorted(["first", 'with "quotes" and \\', long_value])


async def test_no_such_name_or_no_txt_is_empty(dns_peer: FakeDns) -> None:
    assert await lookup_txt(NAME, nameserver=dns_peer.host, port=dns_peer.port) == []
    dns_peer.set_txt(NAME)  # the name exists, without TXT records
    assert await lookup_txt(NAME, nameserver=dns_peer.host, port=dns_peer.port) == []


async def test_a_servfail_is_a_lookup_error(dns_peer: FakeDns) -> None:
    dns_peer.fail(NAME)
    with pytest.raises(DnsLookupError, match="nameserver failed"):
        await lookup_txt(NAME, nameserver=dns_peer.host, port=dns_peer.port)


async def test_a_silent_nameserver_times_out_on_trios_clock(
    dns_peer: FakeDns, autojump_clock: trio.testing.MockClock
) -> None:
    dns_peer.silent = True
    start = trio.current_time()
    with pytest.raises(DnsLookupError, match="no answer within 3s"):
        await lookup_txt(NAME, nameserver=dns_peer.host, port=dns_peer.port, timeout_s=3.0)
    assert trio.current_time() - start == pytest.approx(3.0)


# -- polling --------------------------------------------------------------------------


async def test_the_right_nonce_verifies_at_once(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    nonce = new_nonce()
    dns_peer.set_txt(record_name(SINK_URL), "google-site-verification=abc", nonce)
    verdict = await poll(dns_peer, record_name(SINK_URL), nonce)
    assert verdict == TxtVerdict(
        verified=True, checks=1, detail=f"nonce found at {NAME} after 1 checks"
    )
    assert trio.current_time() == 0.0


async def test_a_record_added_mid_poll_verifies_at_the_next_check(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    nonce = new_nonce()

    async def publish_later() -> None:
        await trio.sleep(450)  # between the checks at 300 and 600
        dns_peer.set_txt(NAME, nonce)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_later)
        verdict = await poll(dns_peer, NAME, nonce, every_s=300, for_s=3600)
    assert verdict.verified
    assert verdict.checks == 3
    assert trio.current_time() == 600.0
    assert dns_peer.queries == 3


async def test_a_wrong_nonce_does_not_verify(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    dns_peer.set_txt(NAME, new_nonce())
    verdict = await poll(dns_peer, NAME, new_nonce(), every_s=300, for_s=900)
    assert not verdict.verified
    assert verdict.checks == 4
    assert verdict.detail.startswith(f"wrong nonce at {NAME}")


async def test_nxdomain_does_not_verify(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    verdict = await poll(dns_peer, NAME, new_nonce(), every_s=300, for_s=600)
    assert verdict == TxtVerdict(
        verified=False, checks=3, detail=f"nonce not found at {NAME} after 3 checks"
    )


async def test_another_domains_record_does_not_verify_this_sink(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    nonce = new_nonce()
    dns_peer.set_txt(record_name("https://evil.example/hook"), nonce)
    verdict = await poll(dns_peer, record_name(SINK_URL), nonce, every_s=300, for_s=300)
    assert not verdict.verified
    assert NAME in verdict.detail
    assert "evil.example" not in verdict.detail


async def test_the_poll_expires_after_for_s_with_every_check_counted(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    verdict = await poll(dns_peer, NAME, new_nonce(), every_s=300, for_s=1800)
    assert not verdict.verified
    assert verdict.checks == 7  # at 0, 300, ..., 1800
    assert verdict.detail == f"nonce not found at {NAME} after 7 checks"
    assert trio.current_time() == 1800.0
    assert dns_peer.queries == 7


async def test_a_failing_lookup_is_one_check_and_the_poll_goes_on(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    nonce = new_nonce()
    dns_peer.fail(NAME)

    async def recover_later() -> None:
        await trio.sleep(150)
        dns_peer.clear(NAME)
        dns_peer.set_txt(NAME, nonce)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(recover_later)
        verdict = await poll(dns_peer, NAME, nonce, every_s=300, for_s=3600)
    assert verdict.verified
    assert verdict.checks == 2


async def test_a_poll_that_only_fails_says_why(
    dns_peer: FakeDns, io_clock: trio.testing.MockClock
) -> None:
    dns_peer.fail(NAME)
    verdict = await poll(dns_peer, NAME, new_nonce(), every_s=300, for_s=300)
    assert not verdict.verified
    assert verdict.checks == 2
    assert "last lookup: the nameserver failed" in verdict.detail
