"""The ticket trail in the whole pipeline under MockClock: the real topology (history,
incidents, router, delivery with the real Slack sink on the fake Slack, the trail on the
fake FreeScout). An incident's life is one conversation; FreeScout failing for a minute
delays nothing else and catches up; a wrong API key is an audited refusal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from actors.supervisor import Supervisor
from actors.topology import Topology, build
from eyetok.clock import TrioWallClock
from eyetok.config import Settings
from eyetok.messages import Signal, SignalKind, VerificationChanged
from eyetok.verification import Verification, VerificationStatus
from harness.peers.platform import FakeHeroku
from harness.peers.slack import FakeSlack
from state.history import ticket_trail as tables
from state.history.store import HistoryStore
from state.history.wal import Journal
from tests.conftest import daemon_settings
from tests.peers.freescout import API_KEY, MAILBOX_ID, FakeFreeScout

ANCHOR = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York


@pytest.fixture
def freescout() -> Iterator[FakeFreeScout]:
    with FakeFreeScout() as fake:
        yield fake


def _settings(
    tmp_path: Path, slack: FakeSlack, freescout: FakeFreeScout, config: str = "", **env: str
) -> Settings:
    return daemon_settings(
        tmp_path / "data",
        slack,
        config=config,
        FREESCOUT_URL=freescout.base_url,
        FREESCOUT_API_KEY=env.pop("key", API_KEY),
        FREESCOUT_MAILBOX_ID=str(MAILBOX_ID),
        EYETOK_PUBLIC_URL="https://eyetok.example",
        **env,
    )


@asynccontextmanager
async def running(settings: Settings, clock: TrioWallClock) -> AsyncIterator[Topology]:
    """The daemon's topology under supervision (no HTTP), the Slack sink verified."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = HistoryStore(settings.data_dir / "history.duckdb")
    journal = Journal(settings.data_dir / "journal")
    topology = build(settings, store, journal, clock)
    supervisor = Supervisor()
    try:
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, topology.children)
            now = clock.now()
            delivery = topology.channels["delivery"]
            assert isinstance(delivery, trio.MemorySendChannel)
            await delivery.send(
                VerificationChanged(
                    verification=Verification(
                        sink_id="slack",
                        sink_type="slack",
                        tenant="operator",
                        status=VerificationStatus.LIVE,
                        handshake_at=now,
                        expires_at=now + timedelta(days=30),
                    )
                )
            )
            yield topology
            await supervisor.stop(grace_s=2.0)
            nursery.cancel_scope.cancel()
    finally:
        for sink in topology.sinks.values():
            await sink.aclose()
        journal.close()
        store.close()


def _signal(clock: TrioWallClock, n: int, *, kind: SignalKind = SignalKind.ALERT) -> Signal:
    return Signal(
        signal_id=f"sig_{n}",
        tenant="operator",
        source="sentry",
        resource="event_alert",
        action="resolved" if kind is SignalKind.RESOLVE else "triggered",
        kind=kind,
        dedup_key="db-down",
        title="Database unreachable",
        received_at=clock.now(),
        level="fatal",
    )


async def until(done: Callable[[], bool], *, within: float, every: float = 1.0) -> None:
    """Wait (trio time) until ``done()`` holds (what a peer thread records)."""
    with trio.fail_after(within):
        while not done():  # noqa: ASYNC110 - polls what a peer thread records
            await trio.sleep(every)


async def test_an_incidents_life_is_one_conversation_tagged_noted_and_closed(
    tmp_path: Path, fake_slack: FakeSlack, freescout: FakeFreeScout, mock_clock: trio.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    async with running(_settings(tmp_path, fake_slack, freescout), clock) as topology:
        opened = await topology.submit(_signal(clock, 1))
        incident_id = opened.incident_id
        assert incident_id is not None
        await until(lambda: len(freescout.conversations) == 1, within=60)
        [conversation] = freescout.conversations
        assert conversation.tags == ["critical", "SEV1", "operator", "fatal"]
        assert conversation.mailbox_id == MAILBOX_ID
        assert f"[EyeTok {incident_id}]" in conversation.subject
        [first] = conversation.threads
        assert first.type == "note"
        [top] = [p for p in fake_slack.posts if p.thread_ts is None]
        assert "https://fake.slack.com/archives/" in first.text
        assert top.ts.replace(".", "") in first.text
        assert f"https://eyetok.example/console/incidents/{incident_id}" in first.text
        # the id reaches the incident (and so the API, the mirror and Slack's later posts)
        with trio.fail_after(30):
            while True:
                [incident] = await topology.incidents(open_only=True, tenant="operator")
                if incident.freescout_conversation_id is not None:
                    break
                await trio.sleep(1)
        assert incident.freescout_conversation_id == conversation.conversation_id

        # three repeats inside a minute: one note, not three
        for n in (2, 3, 4):
            await topology.submit(_signal(clock, n))
            await trio.sleep(5)
        await until(lambda: len(conversation.threads) >= 2, within=120)
        await trio.sleep(90)
        # the first repeat is noted at once, the next two wait for the minute: two notes
        repeats = [t.text for t in conversation.threads if t.text.startswith("Repeated")]
        assert len(repeats) == 2, repeats
        assert "1 more event(s) (total 2)" in repeats[0]
        assert "2 more event(s) (total 4)" in repeats[1]

        await topology.acknowledge_incident(incident_id, "sam")
        await until(
            lambda: any("Acknowledged by sam" in t.text for t in conversation.threads), within=60
        )

        await topology.submit(_signal(clock, 5, kind=SignalKind.RESOLVE))
        await until(lambda: conversation.status == "closed", within=60)
        notes = [t.text for t in conversation.threads]
        assert notes[-1].startswith("Resolved at")
        assert all(t.type == "note" and t.user == 1 for t in conversation.threads)
        assert len(freescout.conversations) == 1
        # Slack's posts after the opening name the conversation
        resolved = [p for p in fake_slack.posts if "Resolved" in (p.text or "")]
        assert resolved, [p.text for p in fake_slack.posts]
        assert f"FreeScout conversation {conversation.conversation_id}" in str(resolved[-1].blocks)
        rows = await topology.store.read(lambda con: tables.trail(con, incident_id))
        assert {r["status"] for r in rows} == {"delivered"}
        kinds = [r["kind"] for r in rows]
        assert (kinds[0], kinds[-1]) == ("open", "close")


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (429, "30")])
async def test_freescout_failing_for_a_minute_delays_nothing_else_and_catches_up(
    tmp_path: Path,
    fake_slack: FakeSlack,
    freescout: FakeFreeScout,
    mock_clock: trio.MockClock,
    status: int,
    retry_after: str | None,
) -> None:
    clock = TrioWallClock(ANCHOR)
    freescout.fail(status, retry_after=retry_after)
    async with running(_settings(tmp_path, fake_slack, freescout), clock) as topology:
        started = trio.current_time()
        await topology.submit(_signal(clock, 1))
        await until(lambda: len(fake_slack.posts) >= 1, within=10, every=0.2)
        assert trio.current_time() - started < 10  # Slack did not wait for FreeScout
        await until(lambda: len(freescout.calls()) >= 1, within=30)
        await trio.sleep(60)
        failed = [c for c in freescout.calls() if c.status == status]
        assert failed
        assert not freescout.conversations
        if retry_after is not None:  # Retry-After honoured: one call per 30 s at most
            assert len(failed) <= 3, len(failed)
        freescout.recover()
        await until(lambda: len(freescout.conversations) == 1, within=120)
        await topology.submit(_signal(clock, 2, kind=SignalKind.RESOLVE))
        [conversation] = freescout.conversations
        await until(lambda: conversation.status == "closed", within=120)
        assert len(freescout.conversations) == 1


async def test_a_wrong_api_key_is_an_audited_refusal_not_retried(
    tmp_path: Path, fake_slack: FakeSlack, freescout: FakeFreeScout, mock_clock: trio.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    settings = _settings(tmp_path, fake_slack, freescout, key="not-the-key")
    async with running(settings, clock) as topology:
        opened = await topology.submit(_signal(clock, 1))
        await until(lambda: len(freescout.calls()) >= 1, within=60)
        await trio.sleep(120)
        assert [c.status for c in freescout.calls()] == [401]  # once: never retried
        assert not freescout.conversations
        await until(
            lambda: any("FreeScout open refused" in (p.text or "") for p in fake_slack.posts),
            within=60,
        )
        await topology.flush_history()
        audits = await topology.store.read(
            lambda con: con.execute(
                "SELECT event, detail FROM audit_log WHERE incident_id = ?", [opened.incident_id]
            ).fetchall()
        )
        refused = [detail for event, detail in audits if event == "ticket_refused"]
        assert len(refused) == 1
        assert "HTTP 401" in refused[0]
        assert "FREESCOUT_API_KEY" in refused[0]
        assert "not-the-key" not in refused[0]
        assert any(
            p.thread_ts is None and "Database unreachable" in (p.text or "")
            for p in fake_slack.posts
        )


async def test_a_row_failing_past_its_maximum_age_ends_dead_audited_and_reported(
    tmp_path: Path, fake_slack: FakeSlack, freescout: FakeFreeScout, mock_clock: trio.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    freescout.fail(503)
    config = "freescout:\n  max_age_s: 120\n  max_backoff_s: 20\n"
    async with running(_settings(tmp_path, fake_slack, freescout, config), clock) as topology:
        opened = await topology.submit(_signal(clock, 1))
        await until(
            lambda: any("FreeScout open dead" in (p.text or "") for p in fake_slack.posts),
            within=300,
        )
        [notice] = [p for p in fake_slack.posts if "FreeScout open dead" in (p.text or "")]
        assert notice.channel.lstrip("#") == "eyetok-operator"
        assert "HTTP 503" in (notice.text or "")
        assert not freescout.conversations
        await topology.flush_history()
        events = await topology.store.read(
            lambda con: con.execute(
                "SELECT event FROM audit_log WHERE incident_id = ?", [opened.incident_id]
            ).fetchall()
        )
        assert ("ticket_dead",) in events
        assert topology.health is not None
        trail = topology.health.get("ticket_trail")
        assert trail is not None
        assert trail.state == "degraded"
        freescout.recover()  # a later note has no conversation to go to: skipped
        await topology.submit(_signal(clock, 2, kind=SignalKind.RESOLVE))
        assert opened.incident_id is not None
        iid = opened.incident_id
        with trio.fail_after(60):
            while True:
                rows = await topology.store.read(lambda con: tables.trail(con, iid))
                if len(rows) >= 3 and all(r["status"] != "pending" for r in rows):
                    break
                await trio.sleep(1)
        assert [r["status"] for r in rows] == ["dead", "skipped", "skipped"]
        assert "no conversation" in str(rows[-1]["detail"])
        assert not freescout.conversations


def _playbook_config(heroku: FakeHeroku) -> str:
    return f"""
integrations:
  heroku: {{api_url: "{heroku.base_url}", token_env: HEROKU_API_TOKEN}}
playbooks:
  - name: db-web
    match: {{sev: [SEV2, SEV2.5]}}
    remediation:
      name: restart web dynos
      action: {{kind: heroku.restart_dyno, app: raxx-prod, dyno: web}}
"""


async def test_a_playbooks_proposal_approvals_and_run_are_noted_in_the_conversation(
    tmp_path: Path, fake_slack: FakeSlack, freescout: FakeFreeScout, mock_clock: trio.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    with FakeHeroku() as heroku:
        settings = _settings(
            tmp_path,
            fake_slack,
            freescout,
            _playbook_config(heroku),
            HEROKU_API_TOKEN=heroku.token,
        )
        async with running(settings, clock) as topology:
            opened = await topology.submit(
                msgspec.structs.replace(
                    _signal(clock, 1), level="error", marks=frozenset({"declared_high"})
                )
            )
            assert opened.incident_id is not None

            def noted(says: str) -> list[str]:
                threads = freescout.conversations[0].threads if freescout.conversations else []
                return [t.text for t in threads if says in t.text]

            await until(lambda: bool(noted("Playbook proposal, waiting")), within=60)
            [proposed] = noted("Playbook proposal, waiting")
            assert "db-web proposes restart web dynos" in proposed
            proposal = re.search(r"\(proposal (prp_[0-9a-f]+)\)", proposed)
            assert proposal is not None
            assert heroku.calls == []  # noted as proposed: nothing ran
            # as Slack's Approve button calls it
            said = await topology.playbook_click("approve", proposal[1], "slack:dana (U0DANA)")
            assert said == "approve: approved"
            await until(lambda: bool(noted("Playbook run finished")), within=60)
            assert len(heroku.calls) == 1
            texts = [t.text for t in freescout.conversations[0].threads]
            order = [
                next(i for i, t in enumerate(texts) if says in t)
                for says in (
                    "Playbook proposal, waiting",
                    "Playbook approval: restart web dynos approved by slack:dana (U0DANA)",
                    "Playbook run started",
                    "Playbook run finished",
                )
            ]
            assert order == sorted(order)
            assert heroku.token not in " ".join(texts)
            # the trail remembers what it noted: nothing is noted twice
            assert len(noted("Playbook approval")) == 1
            await trio.sleep(5)
            assert len(noted("Playbook run finished")) == 1
            [row] = await topology.store.read(
                lambda con: con.execute(
                    "SELECT count(*) FROM ticket_trail WHERE op_id LIKE '%playbook-%'"
                ).fetchall()
            )
            assert row[0] == 4
