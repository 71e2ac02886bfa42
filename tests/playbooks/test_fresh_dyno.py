"""With Postgres (127.0.0.1:5432), the playbooks ledger outlives the data directory: a
fresh dyno still takes the approval of a proposal made before it, still knows a run was
started (and never runs it again), and does not run at all when Postgres cannot record
the intent to run first."""

from __future__ import annotations

from pathlib import Path

import trio

from harness.peers.platform import FakeHeroku, FakeService
from tests.playbooks.rig import Rig, change, incident
from tests.playbooks.test_proposals import settings_for

ALICE = "slack:alice (U0ALICE)"


async def test_a_fresh_dyno_takes_the_approval_and_runs_once(
    nursery: trio.Nursery, tmp_path: Path, pg_dsn: str
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings = settings_for(tmp_path, heroku, service)
        first = Rig(settings, tmp_path / "dyno1" / "playbooks.jsonl", database_url=pg_dsn)
        await first.start(nursery)
        await first.tell(change(incident()))
        await first.until(first.proposal_ids)
        [proposal_id] = first.proposal_ids()
        first.kill()

        fresh = Rig(settings, tmp_path / "dyno2" / "playbooks.jsonl", database_url=pg_dsn)
        await fresh.start(nursery)
        assert await fresh.click("approve", proposal_id, ALICE) == "approve: approved"
        await trio.to_thread.run_sync(heroku.wait_calls, 1)
        assert (tmp_path / "dyno2" / "playbooks.jsonl").stat().st_size > 0
        heroku.delay_s = 2.0
        fresh.kill()

        # a second proposal, approved; the dyno dies while Heroku answers
        third = Rig(settings, tmp_path / "dyno3" / "playbooks.jsonl", database_url=pg_dsn)
        await third.start(nursery)
        await third.tell(change(incident("inc_second")))
        await third.until(third.proposal_ids)
        second = third.proposal_ids()[-1]
        assert await third.click("approve", second, ALICE) == "approve: approved"
        await trio.to_thread.run_sync(heroku.wait_calls, 2)
        third.kill()

        last = Rig(settings, tmp_path / "dyno4" / "playbooks.jsonl", database_url=pg_dsn)
        await last.start(nursery)
        assert any(a.event == "playbook_run_interrupted" for a in last.audits)
        assert await last.click("approve", second, "slack:bob (U0BOB)") == (
            "refused: it is interrupted"
        )
        assert last.audited("playbook_run_started") == 0  # a call follows only that
        assert len(heroku.calls) == 2  # each approved run once, none twice
        last.kill()


async def test_without_postgres_to_record_the_intent_nothing_runs(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings = settings_for(tmp_path, heroku, service)
        down = "host=127.0.0.1 port=9 user=postgres dbname=test connect_timeout=2"
        rig = Rig(settings, tmp_path / "playbooks.jsonl", database_url=down)
        await rig.start(nursery)
        await rig.tell(change(incident()))
        await rig.until(rig.proposal_ids)
        [proposal_id] = rig.proposal_ids()  # proposing does not wait for Postgres
        said = await rig.click("approve", proposal_id, ALICE)
        assert said.startswith("not run: the intent to run could not be recorded in Postgres")
        assert rig.audited("playbook_run_started") == 0
        assert heroku.calls == []
        assert any("not counted and nothing ran" in p for p in rig.posts)
        rig.kill()
