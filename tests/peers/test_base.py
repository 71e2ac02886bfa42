"""The lifecycle every peer shares (harness/peers/base.py), checked through the peers."""

from __future__ import annotations

import http.client
import smtplib
import socket
import threading
from collections.abc import Callable

import dns.message
import dns.query
import pytest

from harness.peers.base import LocalServer
from harness.peers.dns import FakeDns
from harness.peers.mailbox import Mailbox
from harness.peers.oauth import FakeOAuth
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.slack import FakeSlack
from harness.peers.webhook_receiver import WebhookReceiver

PEERS: dict[str, Callable[[], LocalServer]] = {
    "fake-slack-{port}": FakeSlack,
    "fake-pagerduty-{port}": FakePagerDuty,
    "fake-oauth-{port}": FakeOAuth,
    "webhook-receiver-{port}": lambda: WebhookReceiver({}),
    "fake-dns-{port}": FakeDns,
    "drill-mailbox": Mailbox,
}


@pytest.mark.parametrize("thread_name", list(PEERS))
def test_a_peer_starts_once_serves_in_its_named_thread_and_stops(thread_name: str) -> None:
    peer = PEERS[thread_name]()
    label = type(peer).__name__
    with pytest.raises(RuntimeError, match=f"^{label} is not started$"):
        _ = peer.port
    with peer:
        name = thread_name.format(port=peer.port)
        assert [t for t in threading.enumerate() if t.name == name and t.daemon]
        with pytest.raises(RuntimeError, match=f"^{label} already started$"):
            peer.start()
    assert not [t for t in threading.enumerate() if t.name == name]
    with pytest.raises(RuntimeError, match=f"^{label} is not started$"):
        _ = peer.port
    peer.stop()  # a second stop is a no-op


def test_stop_cuts_an_idle_keep_alive_connection() -> None:
    with FakePagerDuty() as fake:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        conn.request("GET", "/_fake/events")
        assert conn.getresponse().read() == b"[]"
        fake.stop()  # returns although the handler thread idles on this connection
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""  # the peer closed it
        conn.close()


def test_a_wait_that_times_out_says_what_was_expected_and_what_came() -> None:
    with FakePagerDuty() as fake, pytest.raises(AssertionError) as caught:
        fake.wait_for(1, timeout=0.05)
    assert str(caught.value) == (
        "FakePagerDuty: expected 1 event(s) within 0.05s; 0 accepted: []; refused: []"
    )


def test_the_dns_peer_answers_and_counts_over_udp() -> None:
    with FakeDns() as peer:
        peer.set_txt("_eyetok-verify.hooks.acme.example", "nonce-1")
        query = dns.message.make_query("_eyetok-verify.hooks.acme.example", "TXT")
        answer = dns.query.udp(query, peer.host, port=peer.port, timeout=5)
        assert [r.to_text() for r in answer.answer[0]] == ['"nonce-1"']
        assert peer.wait_answered(1, timeout=5)
        assert (peer.queries, peer.answered) == (1, 1)
        assert not peer.wait_answered(2, timeout=0.05)


def test_the_mailbox_keeps_what_smtplib_sends() -> None:
    with Mailbox() as box, smtplib.SMTP("127.0.0.1", box.port, timeout=5) as client:
        client.sendmail("a@drill.example", ["b@drill.example"], b"Subject: hi\r\n\r\nbody\r\n")
        [message] = box.wait_for(1, timeout=5)
        assert message["Subject"] == "hi"
    assert box.wait_for(2, timeout=0.01) == [message]  # no raise: it says what came


def test_a_port_in_use_is_refused_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        peer = FakeSlack(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            peer.start()
        with pytest.raises(RuntimeError, match="not started"):
            _ = peer.port
