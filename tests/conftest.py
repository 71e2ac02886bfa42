"""Shared fixtures: real local peers and an in-process daemon on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.clock import SystemClock
from eyetok.config import Settings, parse_file_config, settings_from
from eyetok.sources import sentry
from harness.peers.slack import FakeSlack
from tests.pg import postgres_or_skip
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, verify_slack

FIXTURES = Path(__file__).parent / "fixtures" / "sentry"
SECRET = "sentry-client-secret-for-tests"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """The DSN of a fresh Postgres database, dropped after the test (skip when Postgres
    is not reachable; fail instead when CI=true)."""
    with postgres_or_skip() as dsn:
        yield dsn


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def daemon_settings(
    data_dir: Path, slack: FakeSlack | None, *, config: str = "", **env: str
) -> Settings:
    environ = {
        "PORT": "0",
        "EYETOK_DATA_DIR": str(data_dir),
        "SENTRY_CLIENT_SECRET": SECRET,
        "EYETOK_ONCALL_SLACK_USER": "U0ONCALL",
        "EYETOK_ROOT_TOKEN": ROOT_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        **env,
    }
    if slack is not None:
        environ |= {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    return settings_from(parse_file_config(config), environ)


async def start_daemon(
    nursery: trio.Nursery, settings: Settings, *, verify: tuple[str, ...] = ("slack",)
) -> Daemon:
    """A daemon in this trio run, on a free port, its ``verify`` Slack sinks verified
    through the real handshake; stop it with ``request_stop()``."""
    instance = Daemon(settings, SystemClock(), host="127.0.0.1")
    await nursery.start(instance.run)
    for sink_id in verify:
        if sink_id in settings.sink_secrets:
            await verify_slack(f"http://127.0.0.1:{instance.bound_port}", sink_id)
    return instance


@pytest.fixture
async def daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Daemon]:
    instance = await start_daemon(nursery, daemon_settings(tmp_path / "data", fake_slack))
    yield instance
    instance.request_stop()


def signed_headers(body: bytes, resource: str | None = "event_alert") -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "sentry-hook-signature": sentry.sign(body, SECRET),
    }
    if resource:
        headers["sentry-hook-resource"] = resource
    return headers


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
        yield c


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll ``condition`` (it reads state outside this trio run: a peer, Postgres, the
    daemon's tables) until it holds, failing after ``within`` seconds."""
    with trio.fail_after(within):
        while not await condition():  # noqa: ASYNC110 - polling an outside system
            await trio.sleep(0.02)


def fixture_body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()
