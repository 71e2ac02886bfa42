"""``POST /hooks/heroku-logs/{tenant}`` against the daemon running in-process, its real
ASGI front, the fake Slack as the sink. Bodies are built in Heroku's documented shapes
(tests/sources/heroku_lines.py)."""

from __future__ import annotations

import base64
import re
import shlex
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing

from actors.daemon import Daemon
from eyetok.clock import TrioWallClock
from eyetok.http.hooks import MAX_BODY
from eyetok.messages import Severity
from eyetok.severity import sev_channel_for
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, start_daemon
from tests.sources import heroku_lines as lines
from tests.verify import verify_slack

PASSWORD = "drain-password-for-tests-5e1d"
CONFIG = """
tenants:
  operator:
    tier: operator
    heroku_drain: {user: drain, password_env: EYETOK_DRAIN_PASSWORD, quiet_s: 300}
  acme:
    tier: team
    heroku_drain:
      user: acme-drain
      password_env: ACME_DRAIN_PASSWORD
      apps: {"d.73ea7440-270a-435a-a0ea-adf50b4e5f5a": raxx-prod}
  bare: {tier: public}
"""
ENV = {"EYETOK_DRAIN_PASSWORD": PASSWORD, "ACME_DRAIN_PASSWORD": "acme-" + PASSWORD}


def drain_headers(
    frames: int | None, *, user: str = "drain", password: str = PASSWORD
) -> dict[str, str]:
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {
        "content-type": "application/logplex-1",
        "authorization": f"Basic {basic}",
        "logplex-drain-token": lines.TOKEN,
        "logplex-frame-id": "09C557EAFCFB6CF2740EE62F62971098",
        "user-agent": "Logplex/v72",
    }
    if frames is not None:
        headers["logplex-msg-count"] = str(frames)
    return headers


@pytest.fixture
async def running(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    """The daemon on the drain config, and a client of its port."""
    instance = await start_daemon(
        nursery, daemon_settings(tmp_path / "data", fake_slack, config=CONFIG, **ENV)
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{instance.bound_port}") as c:
        yield instance, c
    instance.request_stop()


@pytest.fixture
def daemon(running: tuple[Daemon, httpx.AsyncClient]) -> Daemon:
    return running[0]


@pytest.fixture
def client(running: tuple[Daemon, httpx.AsyncClient]) -> httpx.AsyncClient:
    return running[1]


async def post(
    client: httpx.AsyncClient, body: bytes, frames: int | None, tenant: str = "operator", **kw: Any
) -> httpx.Response:
    return await client.post(
        f"/hooks/heroku-logs/{tenant}", content=body, headers=drain_headers(frames, **kw)
    )


async def journalled(daemon: Daemon) -> list[tuple[Any, ...]]:
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows: list[tuple[Any, ...]] = await daemon.store.read(
        lambda con: con.execute("SELECT source, dedup_key FROM signals").fetchall()
    )
    return rows


async def incidents(daemon: Daemon) -> list[tuple[Any, ...]]:
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows: list[tuple[Any, ...]] = await daemon.store.read(
        lambda con: con.execute(
            "SELECT dedup_key, status, event_count, rule, sev_channel FROM incidents"
        ).fetchall()
    )
    return rows


# --- framing and answers ------------------------------------------------------------------


async def test_a_single_frame_h12_is_202_and_one_signal(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    response = await post(client, lines.body(lines.h12()), 1)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["frames"], answer["accepted"]) == (1, 1)
    [signal] = answer["signals"]
    assert (signal["rule"], signal["severity"], signal["action"]) == ("heroku-h12", "high", "open")
    assert await journalled(daemon) == [
        ("heroku-logs", "heroku:d.73ea7440-270a-435a-a0ea-adf50b4e5f5a:H12:web")
    ]


async def test_ordinary_lines_are_202_and_journal_nothing(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    messages = [lines.info(n) for n in range(20)] + [lines.app_line(1)]
    response = await post(client, lines.body(*messages), len(messages))
    assert response.status_code == 202, response.text
    assert response.json() == {"frames": 21, "accepted": 0, "signals": []}
    assert await journalled(daemon) == []


async def test_multi_frame_with_newlines_inside_keeps_every_frame(
    client: httpx.AsyncClient,
) -> None:
    trace = lines.dyno("web.1", "Traceback:\n  File app.py\nError R14 (Memory quota exceeded)")
    messages = [lines.info(), trace, lines.r15(), lines.crashed(), lines.h12()]
    response = await post(client, lines.body(*messages), len(messages))
    assert response.status_code == 202, response.text
    rules = [s["rule"] for s in response.json()["signals"]]
    assert rules == ["heroku-r14", "heroku-r15", "heroku-crashed", "heroku-h12"]


async def test_r15_through_the_hook_is_sev1(client: httpx.AsyncClient) -> None:
    response = await post(client, lines.body(lines.r15()), 1)
    [signal] = response.json()["signals"]
    assert (signal["rule"], signal["severity"], signal["sev_channel"]) == (
        "heroku-r15",
        "critical",
        "SEV1",
    )


async def test_a_truncated_frame_is_400_naming_its_offset_and_the_good_frames_are_accepted(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    good = lines.body(lines.h12(), lines.r15())
    body = good + lines.frame(lines.crashed())[:30]
    response = await post(client, body, 3)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"].startswith(f"malformed logplex body: byte offset {len(good)}: truncated")
    assert [b["offset"] for b in answer["bad_frames"]] == [len(good)]
    assert (answer["frames"], answer["accepted"]) == (2, 2)
    assert [s["rule"] for s in answer["signals"]] == ["heroku-h12", "heroku-r15"]
    assert len(await journalled(daemon)) == 2


async def test_a_wrong_count_header_is_400_and_the_frames_are_still_read(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, lines.body(lines.h12(), lines.info()), 3)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "malformed logplex body: Logplex-Msg-Count says '3', the body holds 2"
    assert (answer["bad_frames"], answer["frames"], answer["accepted"]) == ([], 2, 1)
    response = await post(client, lines.body(lines.h12()), None)
    assert response.status_code == 202, "the count header is optional"


async def test_5000_lines_parse_within_the_1_mib_cap(client: httpx.AsyncClient) -> None:
    messages = lines.mixed(5000)
    body = lines.body(*messages)
    assert len(body) < MAX_BODY
    response = await post(client, body, 5000)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["frames"] == 5000
    assert answer["accepted"] == 50
    actions = [s["action"] for s in answer["signals"]]
    assert actions == ["open"] + ["update"] * 49


async def test_another_content_type_is_415(client: httpx.AsyncClient) -> None:
    headers = drain_headers(1) | {"content-type": "application/json"}
    response = await client.post("/hooks/heroku-logs/operator", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert "application/logplex-1" in response.json()["error"]


# --- credentials --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "kw", "error"),
    [
        ("operator", {"password": "guess"}, "wrong Heroku drain user or password"),
        ("operator", {"user": "root"}, "wrong Heroku drain user or password"),
        ("acme", {"user": "drain"}, "wrong Heroku drain user or password"),
        (
            "bare",
            {},
            "no Heroku drain is configured for tenant 'bare': set tenants.bare.heroku_drain "
            "(user, password_env)",
        ),
    ],
)
async def test_wrong_credentials_are_401(
    client: httpx.AsyncClient, daemon: Daemon, tenant: str, kw: dict[str, str], error: str
) -> None:
    response = await post(client, lines.body(lines.h12()), 1, tenant, **kw)
    assert response.status_code == 401
    assert response.json() == {"error": error}
    headers = drain_headers(1)
    del headers["authorization"]
    response = await client.post(
        "/hooks/heroku-logs/operator", content=lines.body(lines.h12()), headers=headers
    )
    assert response.status_code == 401
    assert "Basic auth" in response.json()["error"]
    assert await journalled(daemon) == []


async def test_a_pinned_drain_token_names_the_app_and_refuses_others(
    client: httpx.AsyncClient,
) -> None:
    acme = {"user": "acme-drain", "password": "acme-" + PASSWORD}
    response = await post(client, lines.body(lines.h12()), 1, "acme", **acme)
    assert response.status_code == 202, response.text
    headers = drain_headers(1, **acme) | {"logplex-drain-token": "d.someone-else"}
    response = await client.post(
        "/hooks/heroku-logs/acme", content=lines.body(lines.h12()), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"].startswith("drain token 'd.someone-else' is not one of")


async def test_an_unknown_tenant_is_404_and_a_get_is_405(client: httpx.AsyncClient) -> None:
    assert (await post(client, lines.body(lines.h12()), 1, "nobody")).status_code == 404
    assert (await client.get("/hooks/heroku-logs/operator")).status_code == 405
    assert (await client.post("/hooks/heroku-logs")).status_code == 404


# --- a storm, under the mock clock --------------------------------------------------------


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_an_h12_storm_is_one_incident_with_a_count_then_resolves_when_quiet(
    tmp_path: Path, fake_slack: FakeSlack, io_clock: trio.testing.MockClock
) -> None:
    settings = daemon_settings(tmp_path / "data", fake_slack, config=CONFIG, **ENV)
    # wall time starts now (the Slack handshake is signed with real time), then follows trio's
    anchor = datetime.fromtimestamp(time.time(), tz=UTC)
    daemon = Daemon(settings, TrioWallClock(anchor), host="127.0.0.1")
    key = f"heroku:{lines.TOKEN}:H12:web"
    channel = sev_channel_for(Severity.HIGH, anchor)[0]
    assert channel is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        url = f"http://127.0.0.1:{daemon.bound_port}"
        await verify_slack(url, "slack")
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(3):  # three POSTs a minute apart, 40 H12s across 4 web dynos
                storm = [lines.h12(f"web.{n % 4 + 1}") for n in range(40)]
                response = await post(client, lines.body(*storm), 40)
                assert response.status_code == 202, response.text
                await trio.sleep(60)
            assert await incidents(daemon) == [(key, "open", 120, "heroku-h12", channel.value)]
            await trio.sleep(300 - 60 - 5)  # 295 s after the last line: still open
            assert [row[1] for row in await incidents(daemon)] == ["open"]
            await trio.sleep(10)
            assert await incidents(daemon) == [(key, "resolved", 120, "heroku-h12", channel.value)]
            # a new line after the resolve opens a new incident
            response = await post(client, lines.body(lines.h12()), 1)
            assert response.json()["signals"][0]["action"] == "open"
        daemon.request_stop()
    posts = [p for p in fake_slack.posts if p.channel == f"raxx-ops-alert-{channel.value}"]
    opened, *replies, reopened = posts
    assert opened.text == f"[{channel.value}] {lines.TOKEN} web: H12 Request timeout"
    assert opened.thread_ts is None
    assert {r.thread_ts for r in replies} == {opened.ts}
    # repeats coalesce into a few "Seen again" replies; the last reply is the resolve
    assert 1 <= len(replies) - 1 < 120
    assert all((r.text or "").startswith("Seen again") for r in replies[:-1])
    assert (replies[-1].text or "").startswith("Resolved at")
    assert "after 120 events" in (replies[-1].text or "")
    assert reopened.thread_ts is None


# --- the README's drain ---------------------------------------------------------------------


def _readme_section() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return readme.split("## Heroku log drains", 1)[1].split("\n## ", 1)[0]


async def test_the_readme_config_and_drains_add_url_work_as_heroku_would_use_them(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    section = _readme_section()
    [config] = re.findall(r"```text\n(tenants:.*?)```", section, flags=re.S)
    [add] = [line for line in section.splitlines() if line.startswith("heroku drains:add")]
    password = "readme-" + PASSWORD
    url = urlsplit(shlex.split(add)[2].replace("$ACME_DRAIN_PASSWORD", password))
    assert shlex.split(add)[-2:] == ["-a", "raxx-prod"]
    settings = daemon_settings(tmp_path / "data", None, config=config, ACME_DRAIN_PASSWORD=password)
    daemon = await start_daemon(nursery, settings, verify=())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
            # Logplex sends the URL's user:pass as Basic credentials, to the URL's path
            assert url.username is not None
            assert url.password is not None
            response = await client.post(
                url.path,
                content=lines.body(lines.router("H27", "Client Request Interrupted")),
                headers=drain_headers(1, user=url.username, password=url.password),
            )
    finally:
        daemon.request_stop()
    assert response.status_code == 202, response.text
    [signal] = response.json()["signals"]
    assert signal["rule"] == "heroku-h27"
