"""Every action path asks the one authorisation: the Slack buttons other than Acknowledge
(Resolve with a note, its modal, a playbook's Approve, acknowledging an escalation) and
the thread verbs (``ack``, ``resolve``, ``mute``), against the daemon in-process with the
people of tests/http/test_access.py. A refusal names the role and records nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import trio

from eyetok.http.slack_gate import GATED
from eyetok.http.slack_interactions import BUTTONS, RESOLVE_ACTION, RESOLVE_VIEW, SUBMISSIONS
from eyetok.playbooks.posts import ACKNOWLEDGE_ESCALATION_ACTION, APPROVE_ACTION
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from state.history.conversation_queries import thread_owner
from tests.conftest import eventually
from tests.http.test_access import ROOT, audit, open_sev1, running, switch, token_of
from tests.http.test_slack_interactions import _signed
from tests.peers.slack_events import SlackEventsSender


async def _press(api: httpx.AsyncClient, user: str, action_id: str, value: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "actions": [{"action_id": action_id, "value": value}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    answer = await api.post("/slack/interactions", content=body, headers=_signed(body))
    assert answer.status_code == 200, answer.text
    said: dict[str, Any] = answer.json()
    return str(said.get("text", ""))


async def _submit_resolve(api: httpx.AsyncClient, user: str, incident_id: str) -> dict[str, Any]:
    view = {
        "callback_id": RESOLVE_VIEW,
        "private_metadata": f"incident:{incident_id}",
        "state": {"values": {"note": {"note": {"value": "restarted the worker pool"}}}},
    }
    payload = {
        "type": "view_submission",
        "user": {"id": user},
        "team": {"id": TEAM_ID},
        "view": view,
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    answer = await api.post("/slack/interactions", content=body, headers=_signed(body))
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else {}


async def _status(api: httpx.AsyncClient, incident_id: str) -> dict[str, Any]:
    listed = (await api.get("/api/v1/incidents", headers=ROOT)).json()["incidents"]
    found: dict[str, Any] = next(i for i in listed if i["incident_id"] == incident_id)
    return found


async def test_every_slack_button_is_authorised(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        incident_id = await open_sev1(api)
        value = f"incident:{incident_id}"
        for action_id in (RESOLVE_ACTION, ACKNOWLEDGE_ESCALATION_ACTION):
            said = await _press(api, "U0VIC", action_id, value)  # a viewer
            assert "needs the role responder or tenant_scoped_operator" in said, action_id
        said = await _press(api, "U0VIC", APPROVE_ACTION, "proposal:prp_0123456789abcdef")
        assert "remediate needs the role responder" in said
        refused = await _submit_resolve(api, "U0VIC", incident_id)
        assert refused["response_action"] == "errors"
        assert "needs the role responder" in refused["errors"]["note"]
        assert (await _status(api, incident_id))["status"] == "open"  # nothing recorded

        # Alice wearing root_operator: refused the tenant's incident, told to switch hats
        alice = await token_of(api, "U0ALICE")
        worn = await switch(api, alice, "root_operator", "rotate the quarterly secrets")
        assert worn.status_code == 200, worn.text
        said = await _press(api, "U0ALICE", ACKNOWLEDGE_ESCALATION_ACTION, value)
        assert "root_operator session is refused" in said
        assert "eyetok role switch tenant_scoped_operator" in said

        # a responder passes the gate: the modal's submission resolves the incident
        assert await _submit_resolve(api, "U0CAROL", incident_id) == {}
        resolved = await _status(api, incident_id)
        assert resolved["status"] == "resolved"
        refusals = await audit(daemon, "access_refused")
        assert any("U0VIC: remediate" in r and "needs responder" in r for r in refusals)


async def test_the_thread_verbs_are_authorised(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        incident_id = await open_sev1(api)
        [first] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
        store = daemon.store
        assert store is not None

        async def thread_known() -> bool:  # the post's delivery is in the history
            assert daemon.topology is not None
            await daemon.topology.flush_history()
            found = await store.read(lambda con: thread_owner(con, first.ts))
            return found is not None

        await eventually(thread_known)
        slack = SlackEventsSender(f"{api.base_url}/slack/events")
        thread = first.ts

        def threaded() -> list[Any]:
            return [p for p in fake_slack.posts if p.thread_ts == thread]

        async def say(text: str, user: str) -> str:
            before = len(threaded())
            event = slack.reply(text, thread_ts=thread, channel=first.channel, user=user)
            sent = await slack.send(api, slack.envelope(event))
            assert sent.status_code == 200, sent.text
            with trio.fail_after(10):
                while len(threaded()) <= before:  # noqa: ASYNC110 - a peer's record
                    await trio.sleep(0.02)
            return str(threaded()[before].text)

        said = await say("ack", "U0VIC")
        assert said.startswith("Not done: acknowledge")
        assert "needs the role responder" in said
        said = await say("mute 1h", "U0CAROL")  # a responder may not mute the tenant
        assert said.startswith("Not done: configure_tenant")
        assert "tenant_scoped_operator" in said
        assert (await _status(api, incident_id))["acknowledged_by"] is None
        await say("ack", "U0CAROL")
        assert (await _status(api, incident_id))["acknowledged_by"] == "slack:U0CAROL"


def test_every_button_and_modal_asks_the_authorisation() -> None:
    # a button added to BUTTONS without a line in GATED would pass the gate unasked
    assert set(BUTTONS) | set(SUBMISSIONS) == set(GATED)
