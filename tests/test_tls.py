"""eyetok/tls.py: one TLS context of each kind per process, made on first use and as strict
as the ones each client made before; a plain-http daemon makes none (issue 20)."""

from __future__ import annotations

import ssl
import subprocess
import sys

import certifi
import httpx
import pytest

from actors.sinks.email.deliver import EmailSink
from actors.sinks.pagerduty.deliver import PagerDutySink
from actors.sinks.slack.transport import SlackConnections
from actors.sinks.webhook.transport import WebhookConnections
from bench.ingest import ROOT
from bench.ingest.processes import clean_env
from eyetok import tls
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig


@pytest.fixture(autouse=True)
def fresh_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a process that has made no context yet."""
    monkeypatch.setattr(tls, "_made", {})
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _strict(context: ssl.SSLContext) -> None:
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_each_kind_is_made_once_and_verifies() -> None:
    assert tls.contexts_made() == 0
    certified = tls.certifi_context()
    assert tls.certifi_context() is certified
    assert tls.httpx_context() is certified  # httpx's default: certifi's bundle
    assert tls.httpx_context(trust_env=False) is certified
    system = tls.system_context()
    assert tls.system_context() is system
    assert system is not certified
    assert tls.contexts_made() == 2
    for context in (certified, system):
        _strict(context)
    # certifi's bundle, as httpx.create_ssl_context() loads it
    made_by_httpx = httpx.create_ssl_context(trust_env=False)
    assert certified.cert_store_stats()["x509_ca"] == made_by_httpx.cert_store_stats()["x509_ca"]


def test_httpx_context_follows_ssl_cert_file_as_httpx_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    from_env = tls.httpx_context()
    assert from_env is not tls.certifi_context()
    _strict(from_env)
    assert tls.httpx_context() is from_env
    assert tls.httpx_context(trust_env=False) is tls.certifi_context()


async def test_an_on_demand_client_is_made_by_its_first_use() -> None:
    async with tls.OnDemandClient(timeout=3.0) as client:
        assert not client.made
        assert tls.contexts_made() == 0
        made = client()
        assert client() is made
        assert tls.contexts_made() == 1
        async with tls.OnDemandClient(timeout=3.0) as other:
            assert other() is not made
        assert tls.contexts_made() == 1  # the second client shares the first's context
    assert made.is_closed


async def test_an_on_demand_client_with_a_transport_makes_no_context() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async with tls.OnDemandClient(transport=httpx.MockTransport(answer)) as client:
        assert (await client().get("https://example.invalid/")).status_code == 204
    assert tls.contexts_made() == 0


async def test_sinks_make_a_context_for_https_only_and_share_it() -> None:
    kw = {"timeout_s": 5.0, "connect_timeout_s": 5.0, "user_agent": "EyeTok-Webhooks/1"}
    WebhookConnections("http://127.0.0.1:9/hook", **kw)
    SlackConnections("http://127.0.0.1:9/api/", timeout=5.0, ssl=None, size=2)
    EmailSink.from_url(
        sink_id="m", config=EmailSinkConfig(to="a@x.example"), smtp_url="smtp://127.0.0.1:25"
    )
    PagerDutySink(
        sink_id="pd", routing_key="k" * 32, config=PagerDutySinkConfig(routing_key_env="PD_KEY")
    )
    assert tls.contexts_made() == 0
    WebhookConnections("https://one.example/hook", **kw)
    WebhookConnections("https://two.example/hook", **kw)
    assert tls.contexts_made() == 1
    SlackConnections("https://slack.com/api/", timeout=5.0, ssl=None, size=2)
    SlackConnections("https://slack.com/api/", timeout=5.0, ssl=None, size=2)
    assert tls.contexts_made() == 2


# Starts the daemon in process with the default configuration (a Slack sink over plain
# http, as in the bench), counting the TLS contexts made until it is ready.
_DAEMON = """
import ssl, sys, tempfile
from pathlib import Path
import trio
made = []
_new = ssl.SSLContext.__new__
def counted(cls, *args, **kwargs):
    made.append(cls)
    return _new(cls, *args, **kwargs)
ssl.SSLContext.__new__ = counted
from actors.daemon import Daemon
from eyetok.clock import SystemClock
from eyetok.config import parse_file_config, settings_from
data = Path(tempfile.mkdtemp())
env = {"PORT": "0", "EYETOK_DATA_DIR": str(data), "SENTRY_CLIENT_SECRET": "s",
       "EYETOK_ROOT_TOKEN": "r", "SLACK_SIGNING_SECRET": "x", "SLACK_BOT_TOKEN": "xoxb-t",
       "SLACK_API_URL": "http://127.0.0.1:9/api/"}
daemon = Daemon(settings_from(parse_file_config(""), env), SystemClock(), host="127.0.0.1")
async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        print("TLS_CONTEXTS_MADE", len(made), *daemon.supervisor.started, file=sys.stderr)
        daemon.request_stop()
trio.run(main)
"""


def test_a_plain_http_daemon_makes_no_tls_context_by_ready() -> None:
    env = {k: v for k, v in clean_env().items() if not k.startswith("INFISICAL_")}
    done = subprocess.run(
        [sys.executable, "-c", _DAEMON],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [line] = [x for x in done.stderr.splitlines() if x.startswith("TLS_CONTEXTS_MADE ")]
    _, made, *started = line.split()
    assert {"verification", "playbooks", "delivery"} <= set(started)
    assert made == "0"
