"""The other kinds, each against its local peer: a signed generic ``http`` remediation
verified by a Standard Webhooks receiver; Sentry's resolve; a missing credential sends
nothing and says so."""

from __future__ import annotations

from pathlib import Path

import trio

from eyetok.standard_webhooks import new_secret
from harness.peers.platform import FakeHeroku, FakeSentry
from harness.peers.webhook_receiver import WebhookReceiver
from tests.conftest import daemon_settings
from tests.playbooks.rig import Rig, change, incident


def playbook(action: str, *, integrations: str = "") -> str:
    return f"""
{integrations}
playbooks:
  - name: fix
    match: {{sev: [SEV2]}}
    remediation: {{name: fix it, action: {action}}}
"""


async def approve_the_proposal(rig: Rig, nursery: trio.Nursery) -> str:
    await rig.start(nursery)
    await rig.tell(change(incident()))
    await rig.until(rig.proposal_ids)
    [proposal_id] = rig.proposal_ids()
    said = await rig.click("approve", proposal_id, "slack:dana (U0DANA)")
    await rig.until(lambda: rig.audited("playbook_run_finished"))
    return said


async def test_a_signed_http_remediation_verifies_at_the_receiver(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    secret = new_secret()
    with WebhookReceiver({"current": secret}) as receiver:
        action = (
            f'{{kind: http, url: "{receiver.url}", secret_env: RAXX_HOOK_SECRET, '
            "body: {command: drain-queue}}"
        )
        settings = daemon_settings(tmp_path, None, config=playbook(action), RAXX_HOOK_SECRET=secret)
        rig = Rig(settings, tmp_path / "playbooks.jsonl")
        assert await approve_the_proposal(rig, nursery) == "approve: approved"
        [received] = await trio.to_thread.run_sync(receiver.wait_for, 1)
        assert received.verified_by == ("current",)
        assert received.json() == {
            "command": "drain-queue",
            "incident_id": "inc_h12",
            "tenant": "operator",
        }
        assert any("Ran `fix it`" in p and "ok, answered 200" in p for p in rig.posts)
        assert secret not in str(rig.history)


async def test_sentry_resolve_after_approval(nursery: trio.Nursery, tmp_path: Path) -> None:
    with FakeSentry(issues=("6120480017",)) as sentry:
        integrations = f'integrations: {{sentry: {{api_url: "{sentry.base_url}"}}}}'
        settings = daemon_settings(
            tmp_path,
            None,
            config=playbook("{kind: sentry.resolve_issue}", integrations=integrations),
            SENTRY_API_TOKEN=sentry.token,
        )
        rig = Rig(settings, tmp_path / "playbooks.jsonl")
        assert await approve_the_proposal(rig, nursery) == "approve: approved"
        [call] = sentry.calls
        assert (call.method, call.path, call.body) == (
            "PUT",
            "/api/0/issues/6120480017/",
            {"status": "resolved"},
        )
        assert sentry.issues == {"6120480017": "resolved"}


async def test_a_missing_token_sends_nothing_and_says_which(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku:
        integrations = f'integrations: {{heroku: {{api_url: "{heroku.base_url}"}}}}'
        action = "{kind: heroku.restart_dyno, app: raxx-prod, dyno: web}"
        settings = daemon_settings(
            tmp_path, None, config=playbook(action, integrations=integrations)
        )
        rig = Rig(settings, tmp_path / "playbooks.jsonl")
        await approve_the_proposal(rig, nursery)
        assert heroku.calls == []
        assert any(
            "unreachable, not sent: HEROKU_API_TOKEN is not set in the environment" in p
            for p in rig.posts
        )
