"""The ticket trail through ``eyetok run`` as a subprocess: a kill -9 between FreeScout
opening the conversation and EyeTok storing its id does not open a second one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from harness.peers.slack import FakeSlack
from tests.conftest import (
    FIXTURES,
    SECRET,
    daemon_settings,
    eventually,
    fixture_body,
    signed_headers,
    start_daemon,
)
from tests.e2e.daemon import DaemonProcess
from tests.peers.freescout import API_KEY, MAILBOX_ID, FakeFreeScout
from tests.pg import query
from tests.verify import ROOT_TOKEN

FATAL_ISSUE_ID = "6120447702"  # data.event.issue_id of event_alert_fatal.json


@pytest.fixture
def freescout() -> Iterator[FakeFreeScout]:
    with FakeFreeScout() as fake:
        yield fake


def _env(slack: FakeSlack, freescout: FakeFreeScout) -> dict[str, str]:
    return {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "FREESCOUT_URL": freescout.base_url,
        "FREESCOUT_API_KEY": API_KEY,
        "FREESCOUT_MAILBOX_ID": str(MAILBOX_ID),
    }


def _fixture(name: str) -> tuple[bytes, str | None]:
    body = (FIXTURES / f"{name}.json").read_bytes()
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text())
    return body, headers.get("Sentry-Hook-Resource")


def _conversation_on_incident(daemon: DaemonProcess, incident_id: str) -> int | None:
    answer = httpx.get(
        daemon.url + "/api/v1/incidents",
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [incident] = [i for i in answer.json()["incidents"] if i["incident_id"] == incident_id]
    found = incident.get("freescout_conversation_id")
    return int(found) if found is not None else None


def _until(predicate: object, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_kill_between_create_and_store_opens_no_second_conversation(
    tmp_path: Path, fake_slack: FakeSlack, freescout: FakeFreeScout
) -> None:
    freescout.hold_creates(60.0)  # recorded at once, answered a minute later
    with DaemonProcess(tmp_path / "data", _env(fake_slack, freescout)) as daemon:
        daemon.verify_slack()
        body, resource = _fixture("event_alert_error_new_unhandled_prod")
        answer = daemon.post_sentry(body, resource, SECRET)
        assert answer.status_code == 202, answer.text
        incident_id = answer.json()["incident_id"]
        freescout.wait_for(lambda f: len(f.conversations) == 1, "the conversation", timeout=60)
        daemon.kill()  # FreeScout opened it; EyeTok never heard the answer
    freescout.hold_creates(0.0)
    [conversation] = freescout.conversations
    assert f"[EyeTok {incident_id}]" in conversation.subject
    assert conversation.tags[0] == "high"
    assert conversation.tags[1] in ("SEV2", "SEV2.5")
    with DaemonProcess(tmp_path / "data", _env(fake_slack, freescout)) as daemon:
        _until(lambda: _conversation_on_incident(daemon, incident_id) is not None, timeout=60)
        assert _conversation_on_incident(daemon, incident_id) == conversation.conversation_id
        [found] = daemon.events("freescout_conversation_found")
        assert found["conversation_id"] == conversation.conversation_id
        assert len(freescout.conversations) == 1
        assert len(freescout.calls("POST")) == 1  # the one create; the retry looked it up
        body, resource = _fixture("issue_resolved")
        assert daemon.post_sentry(body, resource, SECRET).status_code == 202
        freescout.wait_for(
            lambda f: f.conversations[0].status == "closed", "the closing", timeout=60
        )
        assert daemon.terminate()[0] == 0
    [conversation] = freescout.conversations
    assert conversation.threads[-1].text.startswith("Resolved at")


async def test_a_fresh_dyno_goes_on_in_the_same_conversation(
    nursery: trio.Nursery,
    tmp_path: Path,
    fake_slack: FakeSlack,
    freescout: FakeFreeScout,
    pg_dsn: str,
) -> None:
    """The filesystem is gone, Postgres is not: the incident rehydrated from
    ``incident_state`` names its conversation, so its resolve closes that one."""
    env = {**_env(fake_slack, freescout), "DATABASE_URL": pg_dsn}
    first = await start_daemon(nursery, daemon_settings(tmp_path / "dyno-1", fake_slack, **env))
    body = fixture_body("event_alert_fatal")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.bound_port}") as client:
        answer = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert answer.status_code == 202, answer.text
    incident_id = answer.json()["incident_id"]

    async def mirrored() -> bool:
        rows = await trio.to_thread.run_sync(
            lambda: query(
                pg_dsn,
                "SELECT freescout_conversation_id FROM incident_state WHERE incident_id = %s",
                (incident_id,),
            )
        )
        return bool(rows) and rows[0][0] is not None

    await eventually(mirrored, within=60)
    [conversation] = freescout.conversations
    first.request_stop()
    await trio.sleep(0.5)

    second = await start_daemon(nursery, daemon_settings(tmp_path / "dyno-2", fake_slack, **env))
    resolve = json.loads((FIXTURES / "issue_resolved.json").read_text())
    resolve["data"]["issue"]["id"] = FATAL_ISSUE_ID
    raw = json.dumps(resolve).encode()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.bound_port}") as client:
        answer = await client.post(
            "/hooks/sentry", content=raw, headers=signed_headers(raw, "issue")
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["incident_id"] == incident_id

    async def closed() -> bool:
        return conversation.status == "closed"

    await eventually(closed, within=60)
    assert len(freescout.conversations) == 1
    assert conversation.threads[-1].text.startswith("Resolved at")
    second.request_stop()
