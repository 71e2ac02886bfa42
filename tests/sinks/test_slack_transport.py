"""The Slack sink's posts travel over kept-alive connections (slack-sdk builds and reads
them, pooled ``http.client`` connections carry them), against the fake Slack through a
TCP forwarder that counts the connections made; failures keep the sink's verdicts."""

from __future__ import annotations

import socket

import pytest
import trio

from actors.sinks.base import Delivered, Permanent, Retry
from actors.sinks.slack.config import WORKER_THREADS
from actors.sinks.slack.deliver import SlackSink
from eyetok.clock import SystemClock
from eyetok.config import SlackOptions
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import Scripted
from tests.actors.slack_rig import slack_alert
from tests.peers.tcp_proxy import TcpProxy


def _sink(api_url: str, token: str, *, timeout_s: float = 5.0) -> SlackSink:
    return SlackSink(
        sink_id="slack",
        token=token,
        api_url=api_url,
        options=SlackOptions(request_timeout_s=timeout_s),
        rate=0,
    )


async def _post(sink: SlackSink, n: int) -> object:
    # planned now: a row planned before the sink started would be looked for first
    deliver = slack_alert("acme", n, at=SystemClock().now())
    return await sink.send(sink.render(deliver, thread_ref=None), idempotency_key=f"key-{n}")


async def test_posts_one_after_another_share_one_connection(fake_slack: FakeSlack) -> None:
    with TcpProxy(fake_slack.host, fake_slack.port) as proxy:
        sink = _sink(f"http://{proxy.host}:{proxy.port}/api/", fake_slack.token)
        try:
            outcomes = [await _post(sink, n) for n in range(20)]
        finally:
            await sink.aclose()
    assert all(isinstance(o, Delivered) and o.external_ref for o in outcomes), outcomes
    assert len(fake_slack.posts) == 20
    assert proxy.accepted == 1


async def test_concurrent_posts_use_at_most_the_worker_threads_connections(
    fake_slack: FakeSlack,
) -> None:
    with TcpProxy(fake_slack.host, fake_slack.port) as proxy:
        sink = _sink(f"http://{proxy.host}:{proxy.port}/api/", fake_slack.token)
        outcomes: list[object] = []

        async def post(n: int) -> None:
            outcomes.append(await _post(sink, n))

        try:
            async with trio.open_nursery() as nursery:
                for n in range(40):
                    nursery.start_soon(post, n)
        finally:
            await sink.aclose()
    assert len(outcomes) == 40
    assert all(isinstance(o, Delivered) for o in outcomes), outcomes
    assert len({p.ts for p in fake_slack.posts}) == 40
    assert 1 <= proxy.accepted <= WORKER_THREADS


async def test_slack_refusing_the_token_is_permanent(fake_slack: FakeSlack) -> None:
    sink = _sink(fake_slack.base_url, "xoxb-not-the-fakes")
    try:
        outcome = await _post(sink, 1)
    finally:
        await sink.aclose()
    assert isinstance(outcome, Permanent)
    assert "invalid_auth" in outcome.reason
    assert fake_slack.posts == []


async def test_nothing_listening_is_a_retry_that_did_not_land() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = _sink(f"http://127.0.0.1:{port}/api/", "xoxb-test")
    try:
        first = await _post(sink, 1)
        second = await _post(sink, 1)  # not "maybe landed": no history search first
    finally:
        await sink.aclose()
    for outcome in (first, second):
        assert isinstance(outcome, Retry)
        assert outcome.reason.startswith("cannot reach Slack:")
        assert "onnect" in outcome.reason


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_a_retry_naming_the_status(
    fake_slack: FakeSlack, status: int
) -> None:
    fake_slack.fail_next(Scripted.server_error(status))
    sink = _sink(fake_slack.base_url, fake_slack.token)
    try:
        outcome = await _post(sink, 1)
        again = await _post(sink, 2)  # the connection is still good for the next post
    finally:
        await sink.aclose()
    assert outcome == Retry(reason=f"Slack answered HTTP {status}", after=None)
    assert isinstance(again, Delivered)


async def test_a_rate_limit_carries_slacks_retry_after(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next(Scripted.rate_limited(7))
    sink = _sink(fake_slack.base_url, fake_slack.token)
    try:
        outcome = await _post(sink, 1)
    finally:
        await sink.aclose()
    assert outcome == Retry(reason="rate limited by Slack (HTTP 429)", after=7.0)


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    fake_slack: FakeSlack,
) -> None:
    with TcpProxy(fake_slack.host, fake_slack.port) as proxy:
        sink = _sink(f"http://{proxy.host}:{proxy.port}/api/", fake_slack.token)
        try:
            first = await _post(sink, 1)
            proxy.cut()  # every forwarded connection reset: the kept one is dead
            proxy.restore()
            await trio.sleep(0.05)  # the reset reaches the client's socket
            second = await _post(sink, 2)
        finally:
            await sink.aclose()
    assert isinstance(first, Delivered)
    assert isinstance(second, Delivered)  # not a Retry of a post sent on the dead one
    assert proxy.accepted == 2
    assert len(fake_slack.posts) == 2
