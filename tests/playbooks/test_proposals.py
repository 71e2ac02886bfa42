"""SEV2 proposals against a fake Heroku Platform API on 127.0.0.1: nothing runs without
approval; a rejected proposal never calls; ``high_impact`` needs two distinct approvers,
neither of them the proposer; a kill between approval and answer never runs it twice."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from eyetok.config import Settings
from eyetok.messages import Deliver, IncidentAction, Rewrite
from harness.peers.platform import FakeHeroku, FakeService
from tests.conftest import daemon_settings
from tests.playbooks.rig import Rig, change, incident


def settings_for(
    tmp_path: Path, heroku: FakeHeroku, service: FakeService, *, high_impact: bool = False
) -> Settings:
    action = (
        "{kind: heroku.scale, app: raxx-prod, type: web, quantity: 4}"
        if high_impact
        else "{kind: heroku.restart_dyno, app: raxx-prod, dyno: web}"
    )
    config = f"""
integrations:
  heroku: {{api_url: "{heroku.base_url}", token_env: HEROKU_API_TOKEN}}
playbooks:
  - name: h12-storm
    match: {{sev: [SEV2, SEV2.5], rule: [heroku-h12], title: "H12"}}
    triage:
      - name: health
        action: {{kind: http.check, url: "{service.base_url}/healthz"}}
    remediation: {{name: fix web, action: {action}, high_impact: {str(high_impact).lower()}}}
"""
    return daemon_settings(tmp_path, None, config=config, HEROKU_API_TOKEN=heroku.token)


async def started(
    nursery: trio.Nursery, tmp_path: Path, heroku: FakeHeroku, service: FakeService
) -> tuple[Settings, Path, Rig]:
    """The settings, the ledger's path and the actor running on it."""
    settings = settings_for(tmp_path, heroku, service)
    ledger = tmp_path / "playbooks.jsonl"
    rig = Rig(settings, ledger)
    await rig.start(nursery)
    return settings, ledger, rig


def rewrites(rig: Rig) -> list[Rewrite]:
    """The rewrites of earlier posts the decisions asked for, in order."""
    return [d.rewrite for d in rig.deliveries if d.rewrite is not None]


def proposed_post(rig: Rig, proposal_id: str) -> Deliver:
    return next(
        d
        for d in rig.deliveries
        if d.post is not None and any(b.value == f"proposal:{proposal_id}" for b in d.post.buttons)
    )


async def test_an_unapproved_or_rejected_proposal_never_calls_heroku(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        rig = Rig(settings_for(tmp_path, heroku, service), tmp_path / "playbooks.jsonl")
        await rig.start(nursery)
        await rig.tell(change(incident()))
        await rig.until(rig.proposal_ids)
        [proposal_id] = rig.proposal_ids()
        assert heroku.calls == []  # proposed: waiting
        proposed = next(p for p in rig.posts if "proposes `fix web`" in p)
        assert "heroku.restart_dyno: DELETE" in proposed
        assert "Proposed by eyetok:playbook:h12-storm" in proposed
        assert heroku.token not in str(rig.history)

        said = await rig.click("reject", proposal_id, "slack:alice (U0ALICE)")
        assert said == "reject: rejected"
        said = await rig.click("approve", proposal_id, "slack:bob (U0BOB)")
        assert said == "refused: it is rejected"
        assert heroku.calls == []
        assert any("rejected by slack:alice (U0ALICE); it was not run" in p for p in rig.posts)
        [rejected] = rewrites(rig)
        assert rejected.delivery_id == proposed_post(rig, proposal_id).delivery_id
        assert "Rejected by slack:alice (U0ALICE) at" in rejected.text
        assert rejected.buttons == ()
        events = [a.event for a in rig.audits]
        assert "playbook_rejected" in events
        assert "playbook_click_refused" in events
        assert "playbook_run_started" not in events


async def test_high_impact_needs_two_approvers_neither_the_proposer(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        rig = Rig(
            settings_for(tmp_path, heroku, service, high_impact=True),
            tmp_path / "playbooks.jsonl",
        )
        await rig.start(nursery)
        await rig.tell(change(incident()))
        await rig.until(rig.proposal_ids)
        [first] = rig.proposal_ids()
        assert await rig.click("reject", first, "slack:bob (U0BOB)") == "reject: rejected"
        # carol proposes it again: she is now the proposer
        said = await rig.click("repropose", first, "slack:carol (U0CAROL)")
        assert said == "fix web proposed again by slack:carol (U0CAROL)"
        await rig.until(lambda: len(rig.proposal_ids()) == 2)
        second = rig.proposal_ids()[-1]
        assert second != first
        assert await rig.click("approve", second, "slack:carol (U0CAROL)") == (
            "refused: slack:carol (U0CAROL) proposed it and cannot approve it"
        )
        assert await rig.click("approve", second, "slack:alice (U0ALICE)") == "approve: counted"
        # the same person under another display name is still one approver
        assert await rig.click("approve", second, "slack:alice.w (U0ALICE)") == (
            "refused: slack:alice.w (U0ALICE) has approved it already"
        )
        assert heroku.calls == []
        assert any("(1 of 2 approvals); not run yet" in p for p in rig.posts)
        # the proposal's own post now says who approved, and still offers both buttons
        on_second = proposed_post(rig, second).delivery_id
        [counted] = [r for r in rewrites(rig) if r.delivery_id == on_second]
        assert "Approved by slack:alice (U0ALICE) (1 of 2 approvals)" in counted.text
        assert "waiting for a second approver" in counted.text
        assert [b.text for b in counted.buttons] == ["Approve", "Reject"]
        assert await rig.click("approve", second, "slack:dave (U0DAVE)") == "approve: approved"
        [call] = await trio.to_thread.run_sync(heroku.wait_calls, 1)
        assert (call.method, call.path, call.body) == (
            "PATCH",
            "/apps/raxx-prod/formation/web",
            {"quantity": 4},
        )
        await rig.until(lambda: rig.audited("playbook_run_finished"))
        assert heroku.formation == {("raxx-prod", "web"): 4}
        quorum, ran = [r for r in rewrites(rig) if r.delivery_id == on_second][1:]
        assert "Approved by slack:alice (U0ALICE) and slack:dave (U0DAVE)" in quorum.text
        assert "ok, answered 200" in ran.text
        assert quorum.buttons == ran.buttons == ()
        assert any("Ran `fix web`" in p and "ok, answered 200" in p for p in rig.posts)
        assert await rig.click("approve", second, "slack:erin (U0ERIN)") == "refused: it is ran"
        assert len(heroku.calls) == 1


async def test_a_kill_between_approval_and_answer_never_runs_it_twice(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings, ledger, rig = await started(nursery, tmp_path, heroku, service)
        await rig.tell(change(incident()))
        await rig.until(rig.proposal_ids)
        [proposal_id] = rig.proposal_ids()
        heroku.delay_s = 2.0  # the answer is slow: the process dies before it is recorded
        said = await rig.click("approve", proposal_id, "slack:alice (U0ALICE)")
        assert said == "approve: approved"  # answered at once; the call goes on
        await trio.to_thread.run_sync(heroku.wait_calls, 1)
        rig.kill()

        again = Rig(settings, ledger)
        await again.start(nursery)
        assert any(a.event == "playbook_run_interrupted" for a in again.audits)
        assert any("It is not run again" in p for p in again.posts)
        said = await again.click("approve", proposal_id, "slack:bob (U0BOB)")
        assert said == "refused: it is interrupted"
        assert again.audited("playbook_run_started") == 0  # a call follows only that
        assert len(heroku.calls) == 1  # once, never twice
        # a third start finds nothing to interrupt: it was recorded once
        again.kill()
        third = Rig(settings, ledger)
        await third.start(nursery)
        assert not any(a.event == "playbook_run_interrupted" for a in third.audits)
        third.kill()


async def test_checks_cut_short_by_a_restart_are_made_and_proposed_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings, ledger, rig = await started(nursery, tmp_path, heroku, service)
        service.delay_s = 5.0  # the health check hangs; the process dies meanwhile
        await rig.tell(change(incident()))
        await trio.to_thread.run_sync(service.wait_calls, 1)
        rig.kill()
        assert rig.proposal_ids() == []

        service.delay_s = 0.0
        again = Rig(settings, ledger)
        await again.start(nursery)  # the first post said the checks run: they do
        await again.until(lambda: again.audited("playbook_examined"))
        assert any("Checked `health`" in p for p in again.posts)
        [proposal_id] = again.proposal_ids()
        again.kill()
        third = Rig(settings, ledger)
        await third.start(nursery)
        await third.settle()
        assert third.proposal_ids() == []  # examined: nothing owed, nothing proposed again
        assert await third.click("approve", proposal_id, "slack:alice (U0ALICE)") == (
            "approve: approved"
        )
        await trio.to_thread.run_sync(heroku.wait_calls, 1)


async def test_a_resolve_withdraws_what_waits_for_approval(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        _, _, rig = await started(nursery, tmp_path, heroku, service)
        opened = incident()
        await rig.tell(change(opened))
        await rig.until(rig.proposal_ids)
        [proposal_id] = rig.proposal_ids()
        resolved = msgspec.structs.replace(opened, status="resolved", resolved_at=opened.opened_at)
        await rig.tell(change(resolved, IncidentAction.RESOLVE))
        said = await rig.click("approve", proposal_id, "slack:alice (U0ALICE)")
        assert said == "refused: it is withdrawn"
        assert heroku.calls == []
        assert any(
            "withdrawn: the incident resolved before anyone approved" in p for p in rig.posts
        )
        assert rig.audited("playbook_withdrawn") == 1
