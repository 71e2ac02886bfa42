"""``POST /slack/actions``: the fake Slack sends signed ``block_actions`` and
``view_submission`` requests the way Slack does. ``Resolve…`` on a SEV1 post opens the
"Resolve incident" modal (``views.open`` with the press's trigger id); submitting it with
a note resolves the incident, rewrites the first post, replies in the thread and records
who (Slack user id and name), when and the note, in Postgres too. A forged or stale
request is 401 and changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.sinks.slack.render import ACKNOWLEDGE_ACTION, RESOLVE_ACTION
from eyetok.http import slack_interactions
from eyetok.playbooks.posts import PLAYBOOK_ACTIONS
from harness.peers import slack_interactivity as interactivity
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.pg import query
from tests.verify import (
    ROOT_TOKEN,
    SLACK_SIGNING_SECRET,
    tenant_slack_token,
    tenant_team,
    verify_slack,
)

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
DANA = interactivity.SlackPerson(id="U0DANA", username="dana", team_id="T0FAKE000")


def test_the_buttons_and_the_endpoint_agree_on_the_actions() -> None:
    assert slack_interactions.RESOLVE_ACTION == RESOLVE_ACTION
    expected = {ACKNOWLEDGE_ACTION, RESOLVE_ACTION, *PLAYBOOK_ACTIONS}  # and the playbooks'
    assert set(slack_interactions.BUTTONS) == expected


async def _status(client: httpx.AsyncClient, incident_id: str) -> dict[str, Any]:
    listed = (await client.get("/api/v1/incidents", headers=AUTH)).json()["incidents"]
    [found] = [i for i in listed if i["incident_id"] == incident_id]
    return dict(found)


async def test_resolve_with_a_note_through_the_modal(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack, DATABASE_URL=pg_dsn))
    actions = f"http://127.0.0.1:{daemon.bound_port}/slack/actions"

    def send(payload: dict[str, Any], **kw: Any) -> interactivity.Interaction:
        return interactivity.send(actions, payload, kw.pop("secret", SLACK_SIGNING_SECRET), **kw)

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0
    ) as client:
        body = fixture_body("event_alert_fatal")
        opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
        incident_id = opened.json()["incident_id"]
        [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)

        # Resolve… pressed: the modal opens with the press's trigger id
        press = interactivity.block_actions(
            DANA,
            action_id=RESOLVE_ACTION,
            value=f"incident:{incident_id}",
            trigger_id=fake_slack.issue_trigger_id(),
            message_ts=post.ts,
        )
        pressed = await trio.to_thread.run_sync(send, press)
        assert pressed.status == 200, pressed.text
        [view] = fake_slack.views
        assert view["callback_id"] == "eyetok_resolve"
        assert view["private_metadata"] == f"incident:{incident_id}"
        assert (await _status(client, incident_id))["status"] == "open"  # nothing yet
        # a press whose trigger id Slack did not issue opens nothing (and says so in the log)
        stale_press = dict(press, trigger_id="999.not-issued")
        assert (await trio.to_thread.run_sync(send, stale_press)).status == 200
        assert len(fake_slack.views) == 1

        note = {"note": {"note": "failed over to the replica; <@U0ALL> pool restarted"}}
        submission = interactivity.view_submission(DANA, view, note)
        # forged (another secret) and stale (10 minutes old): 401, nothing changes
        forged = await trio.to_thread.run_sync(lambda: send(submission, secret="not-it"))
        assert forged.status == 401
        stale = await trio.to_thread.run_sync(
            lambda: send(submission, timestamp=int(time.time()) - 600)
        )
        assert stale.status == 401
        assert "5-minute window" in stale.json()["error"]
        assert (await _status(client, incident_id))["status"] == "open"
        # no note: the modal stays open and says why
        empty = interactivity.view_submission(DANA, view, {"note": {"note": "   "}})
        refused = await trio.to_thread.run_sync(send, empty)
        assert refused.json()["response_action"] == "errors"
        assert "Say what was done" in refused.json()["errors"]["note"]

        submitted = await trio.to_thread.run_sync(send, submission)
        assert (submitted.status, submitted.text) == (200, "")  # closes the modal
        incident = await _status(client, incident_id)
        assert incident["status"] == "resolved"
        assert incident["resolved_by"] == "slack:dana (U0DANA)"
        assert incident["resolved_by_id"] == "slack:U0DANA"
        assert incident["resolution_note"] == note["note"]["note"]
        [update] = await trio.to_thread.run_sync(
            lambda: fake_slack.wait_for_calls(1, method="chat.update")
        )
        assert update.body["ts"] == post.ts
        first = json.dumps(update.body["blocks"])
        assert "Resolved by slack:dana (U0DANA)" in first
        assert '"actions"' not in first  # nothing left to press
        [_, reply] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
        assert reply.thread_ts == post.ts
        assert reply.text is not None
        assert reply.text.startswith("Resolved by slack:dana (U0DANA) at ")
        assert "&lt;@U0ALL&gt;" in reply.text  # the note cannot mention anyone
        # submitted twice: not open any more, the modal says so
        twice = await trio.to_thread.run_sync(send, submission)
        assert "not an open incident" in twice.json()["errors"]["note"]

        async def mirrored() -> bool:
            rows = await trio.to_thread.run_sync(
                lambda: query(
                    pg_dsn,
                    "SELECT status, resolved_by, resolved_by_id, resolution_note, resolved_at "
                    "FROM incident_state WHERE incident_id = %s",
                    (incident_id,),
                )
            )
            return bool(rows) and rows[0][:4] == (
                "resolved",
                "slack:dana (U0DANA)",
                "slack:U0DANA",
                note["note"]["note"],
            )

        await eventually(mirrored)
        audit = (await client.get("/api/v1/audit", headers=AUTH)).json()["audit"]
        [resolved] = [r for r in audit if r["event"] == "resolved_by_human"]
        assert "slack:dana (U0DANA)" in resolved["detail"]
        assert "failed over to the replica" in resolved["detail"]
    daemon.request_stop()


async def test_an_interaction_of_another_kind_is_answered_and_changes_nothing(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    actions = f"http://127.0.0.1:{daemon.bound_port}/slack/actions"
    payloads: list[dict[str, Any]] = [
        {"type": "view_closed", "user": DANA.user(), "view": {"callback_id": "eyetok_resolve"}},
        {"type": "shortcut", "user": DANA.user(), "callback_id": "x"},
        interactivity.block_actions(DANA, action_id="someone_elses", value="x", trigger_id=""),
        interactivity.view_submission(DANA, {"callback_id": "not_ours"}, {}),
    ]
    for payload in payloads:
        answer = await trio.to_thread.run_sync(
            lambda p=payload: interactivity.send(actions, p, SLACK_SIGNING_SECRET)
        )
        assert answer.status == 200, answer.text
    not_json = await trio.to_thread.run_sync(
        lambda: interactivity.send(actions, {}, SLACK_SIGNING_SECRET)
    )
    assert not_json.status == 400  # {} lacks "type": a typed 400, not a 500
    daemon.request_stop()


async def test_a_click_from_another_tenants_workspace_changes_nothing(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = """
sinks:
  slack: {type: slack}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
tenants:
  acme:
    tier: team
    policy: {routes: {SEV1: [{sink: acme-slack, target: "#acme-pager"}]}}
"""
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=config,
        ACME_SLACK_TOKEN=tenant_slack_token(fake_slack, "acme"),
    )
    daemon = await start_daemon(nursery, settings)
    base = f"http://127.0.0.1:{daemon.bound_port}"
    await verify_slack(base, "acme-slack", team=tenant_team("acme"))
    acme_person = interactivity.SlackPerson(id="U0EVE", username="eve", team_id=tenant_team("acme"))
    stranger = interactivity.SlackPerson(id="U0MAL", username="mal", team_id="T0NOBODY")
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        body = fixture_body("event_alert_fatal")  # the operator tenant's SEV1
        opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
        incident_id = opened.json()["incident_id"]
        for person in (acme_person, stranger):
            press = interactivity.block_actions(
                person,
                action_id=ACKNOWLEDGE_ACTION,
                value=f"incident:{incident_id}",
                trigger_id=fake_slack.issue_trigger_id(),
            )
            answer = await trio.to_thread.run_sync(
                lambda p=press: interactivity.send(f"{base}/slack/actions", p, SLACK_SIGNING_SECRET)
            )
            assert answer.status == 200
            view = slack_interactions.resolve_view(incident_id)
            submission = interactivity.view_submission(person, view, {"note": {"note": "done"}})
            refused = await trio.to_thread.run_sync(
                lambda s=submission: interactivity.send(
                    f"{base}/slack/actions", s, SLACK_SIGNING_SECRET
                )
            )
            assert "not an open incident" in refused.json()["errors"]["note"]
        incident = await _status(client, incident_id)
        assert (incident["status"], incident["acknowledged_by"]) == ("open", None)
        # the operator's workspace may
        press = interactivity.block_actions(
            DANA, action_id=ACKNOWLEDGE_ACTION, value=f"incident:{incident_id}", trigger_id=""
        )
        await trio.to_thread.run_sync(
            lambda: interactivity.send(f"{base}/slack/actions", press, SLACK_SIGNING_SECRET)
        )
        assert (await _status(client, incident_id))["acknowledged_by"] == "slack:dana (U0DANA)"
        # every click is in the audit, those that changed nothing too, with who and why not
        audit = (await client.get("/api/v1/audit", headers=AUTH)).json()["audit"]
        refused = [r["detail"] for r in audit if r["event"] == "decision_not_applied"]
        assert len(refused) == 4
        assert any(
            d.startswith(f"slack:eve (U0EVE) asked to acknowledge {incident_id}: ")
            and "(acme)" in d
            for d in refused
        )
        assert any(
            d.startswith(f"slack:mal (U0MAL) asked to resolve {incident_id}") for d in refused
        )
    daemon.request_stop()
