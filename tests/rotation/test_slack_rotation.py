"""Rotating a Slack sink's bot token: version N+1 in the sealed store, the gate refusing
until the Slack handshake passes with the new token, one-command rollback, one rotation
at a time. A real daemon (in this trio run) and the fake Slack with the real slack-sdk."""

from __future__ import annotations

from pathlib import Path

import trio

from eyetok.rotation.sealing import new_key
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from tests.conftest import daemon_settings, start_daemon
from tests.rotation.helpers import (
    AUTH,
    alert,
    audit,
    client,
    roll_back,
    rotate,
    standing,
    stored_versions,
    until_status,
)
from tests.test_commands_talk import _eyetok
from tests.verify import ROOT_TOKEN, slack_event_body, slack_headers

NEW = "xoxb-rotated-token"


def _bearers(slack: FakeSlack) -> list[str]:
    return [
        c.headers.get("authorization", "")
        for c in slack.calls
        if c.method == "chat.postMessage" and c.status == 200
    ]


async def _dm(daemon, nonce: str) -> None:  # type: ignore[no-untyped-def]
    body = slack_event_body(f"my nonce: {nonce}")
    async with client(daemon) as c:
        sent = await c.post("/slack/events", content=body, headers=slack_headers(body))
    assert sent.status_code == 200


async def test_slack_rotation_proves_the_new_token_before_delivering_with_it(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_workspace(NEW, TEAM_ID)
    settings = daemon_settings(tmp_path, fake_slack, EYETOK_SECRETS_KEY=new_key())
    daemon = await start_daemon(nursery, settings)

    rotated = await rotate(daemon, "slack", "slack", token=NEW)
    assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    assert answer["version"] == 2
    nonce = answer["handshake"]["nonce"]
    assert await stored_versions(daemon, "slack") == [(1, "previous", True), (2, "current", True)]
    held = await standing(daemon, "slack")
    assert held["deliverable"] is False

    # the gate holds the alert meanwhile; it goes out, with the new token, once proven
    await alert(daemon, issue="7001")
    await trio.sleep(0.3)
    assert _bearers(fake_slack) == []
    await _dm(daemon, nonce)
    await until_status(daemon, "slack", "live")
    fake_slack.wait_for_calls(1, method="chat.postMessage", timeout=10)
    assert _bearers(fake_slack) == [f"Bearer {NEW}"]

    # the rotation is done: the next one may start
    again = await rotate(daemon, "slack", "slack", token="xoxb-third-token")
    assert again.status_code == 200, again.text
    events = [event for event, _ in await audit(daemon, "credential_rotation")]
    assert events[:2] == ["credential_rotation_started", "credential_rotation_done"]
    daemon.request_stop()


async def test_a_refused_token_fails_and_one_command_rolls_back(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path, fake_slack, EYETOK_SECRETS_KEY=new_key())
    daemon = await start_daemon(nursery, settings)
    before = await standing(daemon, "slack")

    rotated = await rotate(daemon, "slack", "slack", token="xoxb-revoked-token")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["handshake"]["ok"] is False  # Slack refuses the token
    assert "handshake failed" in rotated.json()["message"]
    assert "rollback --sink slack" in rotated.json()["message"]
    assert (await standing(daemon, "slack"))["deliverable"] is False

    # a second rotation while this one is open is refused, whatever the sink
    second = await rotate(daemon, "slack", "slack", token=NEW)
    assert second.status_code == 409
    assert "rollback --sink slack" in second.json()["error"]

    back = await roll_back(daemon, "slack")
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 1
    await until_status(daemon, "slack", "live")
    after = await standing(daemon, "slack")
    assert after["deliverable"] is True
    assert after["expires_at"] == before["expires_at"]  # the old token's proof, not a new one
    assert await stored_versions(daemon, "slack") == [
        (1, "current", True),
        (2, "rolled_back", False),
    ]

    await alert(daemon, issue="7002")
    fake_slack.wait_for_calls(1, method="chat.postMessage", timeout=10)
    assert _bearers(fake_slack) == [f"Bearer {fake_slack.token}"]
    events = [event for event, _ in await audit(daemon, "credential_rotation")]
    assert events == ["credential_rotation_started", "credential_rotation_rolled_back"]
    assert "xoxb" not in str(await audit(daemon, ""))
    assert (await roll_back(daemon, "slack")).status_code == 409  # nothing open any more
    daemon.request_stop()


async def test_refusals_are_typed_json(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path, fake_slack)  # no EYETOK_SECRETS_KEY
    daemon = await start_daemon(nursery, settings)
    assert (await rotate(daemon, "slack", "slack", token=NEW)).status_code == 503
    assert (await rotate(daemon, "nope", "slack", token=NEW)).status_code == 404
    assert (await rotate(daemon, "slack", "webhook")).status_code == 400
    assert (await rotate(daemon, "slack", "fax")).status_code == 400
    async with client(daemon) as c:
        unauthorised = await c.post("/api/v1/sinks/slack/rotation", json={"sink_type": "slack"})
        assert unauthorised.status_code == 401
        malformed = await c.post(
            "/api/v1/sinks/slack/rotation",
            content=b"{",
            headers={**AUTH, "content-type": "application/json"},
        )
        assert malformed.status_code == 400
        assert "error" in malformed.json()
        unknown = await c.post(
            "/api/v1/sinks/slack/rotation", json={"sink_type": "slack", "extra": 1}, headers=AUTH
        )
        assert unknown.status_code == 400
    daemon.request_stop()


async def test_the_rotate_command_talks_to_the_running_daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_workspace("xoxb-from-the-cli", TEAM_ID)
    settings = daemon_settings(tmp_path, fake_slack, EYETOK_SECRETS_KEY=new_key())
    daemon = await start_daemon(nursery, settings)
    url = f"http://127.0.0.1:{daemon.bound_port}"
    env = {"EYETOK_ROOT_TOKEN": ROOT_TOKEN, "SLACK_BOT_TOKEN_NEXT": "xoxb-from-the-cli"}

    code, out, err = await _eyetok("rotate", "slack", "--sink", "slack", "--url", url, env=env)
    assert code == 0, err
    assert "Version 2 of sink slack is in place" in out
    assert "nonce: " in out
    assert "xoxb-from-the-cli" not in out

    code, _, err = await _eyetok("rotate", "webhook", "--sink", "slack", "--url", url, env=env)
    assert code == 1
    assert "HTTP 400" in err
    assert "is a slack sink, not webhook" in err

    code, out, err = await _eyetok(
        "rotate", "rollback", "--sink", "slack", "--by", "carol", "--url", url, env=env
    )
    assert code == 0, err
    assert "back on version 1" in out
    assert ("credential_rotation_rolled_back", '"by": "carol"') in [
        (event, detail[detail.index('"by"') : detail.index('"by"') + 13])
        for event, detail in await audit(daemon, "credential_rotation_rolled")
    ]
    code, _, err = await _eyetok(
        "rotate", "slack", "--sink", "slack", "--url", url, env={"EYETOK_ROOT_TOKEN": ROOT_TOKEN}
    )
    assert code == 2
    assert "SLACK_BOT_TOKEN_NEXT is not set" in err
    daemon.request_stop()
