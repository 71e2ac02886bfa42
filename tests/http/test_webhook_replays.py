"""A signed Standard Webhooks message replayed inside the signature's tolerance is answered
202 ``duplicate`` and not applied again; against the daemon running in-process."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.standard_webhooks import new_secret, webhook_headers
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, start_daemon

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OPERATOR_SECRET = new_secret()
ACME_SECRET = new_secret()
CONFIG = "tenants:\n  operator: {tier: operator}\n  acme: {tier: team}\n"
ENV = {
    "EYETOK_HOOK_SECRET": OPERATOR_SECRET,
    "EYETOK_HOOK_SECRET_ACME": ACME_SECRET,
    "EYETOK_HOOK_TOKEN": "replay-test-token",
}


@pytest.fixture
async def daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Daemon]:
    settings = daemon_settings(tmp_path / "data", fake_slack, config=CONFIG, **ENV)
    instance = await start_daemon(nursery, settings)
    yield instance
    instance.request_stop()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
        yield c


def signed(body: bytes, msg_id: str, secret: str = OPERATOR_SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        **webhook_headers([secret], msg_id, int(time.time()), body),
    }


async def signal_ids(daemon: Daemon) -> list[str]:
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows: list[tuple[str]] = await daemon.store.read(
        lambda con: con.execute("SELECT signal_id FROM signals ORDER BY signal_id").fetchall()
    )
    return [row[0] for row in rows]


async def test_a_replayed_message_is_a_202_duplicate_and_is_not_applied_again(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    body = (FIXTURES / "generic" / "batch.json").read_bytes()
    headers = signed(body, "msg_replayed")
    first = await client.post("/hooks/generic/operator", content=body, headers=headers)
    assert first.status_code == 202, first.text
    original = [s["signal_id"] for s in first.json()["signals"]]
    assert len(original) == len(json.loads(body)) > 1
    applied = await signal_ids(daemon)

    replay = await client.post("/hooks/generic/operator", content=body, headers=headers)
    assert replay.status_code == 202, replay.text
    assert replay.json() == {
        "accepted": 0,
        "duplicate": True,
        "webhook_id": "msg_replayed",
        "original_signal_ids": original,
        "signals": [],
    }
    # the sender's own retry: same id, a fresh timestamp and signature
    retry = await client.post(
        "/hooks/generic/operator", content=body, headers=signed(body, "msg_replayed")
    )
    assert retry.json()["duplicate"] is True
    assert await signal_ids(daemon) == applied == sorted(original)


async def test_the_same_id_on_another_tenant_or_hook_or_unsigned_is_applied(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    generic = (FIXTURES / "generic" / "high_firing.json").read_bytes()
    probe = (FIXTURES / "probe" / "verdict_down.json").read_bytes()
    sent = [
        ("/hooks/generic/operator", generic, signed(generic, "msg_shared")),
        ("/hooks/generic/acme", generic, signed(generic, "msg_shared", ACME_SECRET)),
        ("/hooks/probe/operator", probe, signed(probe, "msg_shared")),
        # a bearer token authenticates the sender, not the id: never taken for a replay
        (
            "/hooks/generic/operator",
            generic,
            {"authorization": "Bearer replay-test-token", "webhook-id": "msg_shared"},
        ),
    ]
    for path, body, headers in sent:
        answer = await client.post(path, content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert "duplicate" not in answer.json()
        assert answer.json()["accepted"] == 1
    assert len(await signal_ids(daemon)) == 4


async def test_a_partly_refused_batch_is_not_remembered_so_its_retry_is_applied(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = CONFIG + "ingest_queue: 1\n"
    settings = daemon_settings(tmp_path / "data", fake_slack, config=config, **ENV)
    daemon = await start_daemon(nursery, settings)
    try:
        verdict = json.loads((FIXTURES / "probe" / "verdict_down.json").read_bytes())
        body = json.dumps([verdict | {"server": f"mirror-{i}.example"} for i in range(200)])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
            first = await c.post(
                "/hooks/probe/operator", content=body, headers=signed(body.encode(), "msg_big")
            )
            assert first.status_code == 503, first.text
            assert 0 < first.json()["accepted"] < 200
            retry = await c.post(
                "/hooks/probe/operator", content=body, headers=signed(body.encode(), "msg_big")
            )
        assert "duplicate" not in retry.json(), retry.text
        assert retry.json()["accepted"] > 0
    finally:
        daemon.request_stop()


async def test_a_replay_after_a_restart_is_still_a_duplicate(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path / "data", fake_slack, config=CONFIG, **ENV)
    body = (FIXTURES / "generic" / "batch.json").read_bytes()
    headers = signed(body, "msg_before_restart")
    async with trio.open_nursery() as first_life:
        first = await start_daemon(first_life, settings)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.bound_port}") as c:
            accepted = await c.post("/hooks/generic/operator", content=body, headers=headers)
        first.request_stop()
    assert accepted.status_code == 202, accepted.text
    original = [s["signal_id"] for s in accepted.json()["signals"]]

    second = await start_daemon(nursery, settings)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.bound_port}") as c:
            replay = await c.post("/hooks/generic/operator", content=body, headers=headers)
        assert replay.status_code == 202, replay.text
        assert replay.json()["duplicate"] is True
        assert replay.json()["original_signal_ids"] == original
        assert await signal_ids(second) == sorted(original)
    finally:
        second.request_stop()
