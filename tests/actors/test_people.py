"""Hat switches under trio's MockClock, through the real actor tree (no HTTP): the switch,
its expiry and its end are audited, expiry is computed from the stored hat (it survives a
restart, and a hat that ran out while EyeTok was down is ended on start)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.history import HistoryDeps, run_history
from actors.people.actor import PeopleDeps, run_people
from eyetok.access import Action
from eyetok.clock import TrioWallClock
from eyetok.config import parse_file_config, settings_from
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import (
    ApiAnswer,
    Deliver,
    FlushHistory,
    HistoryMessage,
    MirrorMessage,
    PeopleMessage,
    PeopleOp,
    PeopleRequest,
    Reply,
)
from state.history.store import HistoryStore
from state.history.wal import Journal

ANCHOR = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CONFIG = """
tenants:
  acme: {tier: team}
people:
  - slack_user_id: U0ALICE
    roles: [{role: root_operator}, {role: tenant_scoped_operator, tenant: acme}]
"""


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    """Jumps only once every task has been idle 0.5 s: DuckDB's worker threads run on real
    time, and a jump while one commits would run out the journal's timeout."""
    return trio.testing.MockClock(autojump_threshold=0.5)


@dataclass
class Tree:
    """The people actor and the real history actor behind it, on one DuckDB file."""

    people: trio.MemorySendChannel[PeopleMessage]
    history: trio.MemorySendChannel[HistoryMessage]
    store: HistoryStore

    async def people_call(
        self, request_of: Callable[[Reply[ApiAnswer]], PeopleRequest]
    ) -> ApiAnswer:
        reply: Reply[ApiAnswer] = Reply()
        await self.people.send(request_of(reply))
        return await reply.wait()

    async def flush_history(self) -> None:
        reply: Reply[bool] = Reply()
        await self.history.send(FlushHistory(reply=reply))
        await reply.wait()


@asynccontextmanager
async def actors(data: Path, clock: TrioWallClock, config: str = CONFIG) -> AsyncIterator[Tree]:
    """The history and people actors as the daemon wires them, on ``data`` (which survives
    between uses: a restart). The history materialises on request only, so the only timers
    are the hats' (and the journal's timeout)."""
    settings = settings_from(
        parse_file_config(config), {"EYETOK_DATA_DIR": str(data), "EYETOK_ROOT_TOKEN": "r00t"}
    )
    store = HistoryStore(data / "history.duckdb")
    journal = Journal(data / "journal")
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](64)
    people_tx, people_rx = trio.open_memory_channel[PeopleMessage](0)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Deliver](64)
    mirror_tx, _mirror_rx = trio.open_memory_channel[MirrorMessage](64)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    run_history,
                    HistoryDeps(store=store, journal=journal, materialise_every_s=86_400.0),
                    history_rx,
                    delivery_tx,
                    mirror_tx,
                    clock=clock,
                )
            )
            deps = PeopleDeps(
                people=settings.people,
                credentials=LiveCredentials.of(settings),
                operator_tenant=settings.operator_tenant,
                store=store,
                tenants=frozenset(settings.tenants),
            )
            await nursery.start(partial(run_people, deps, people_rx, history_tx, clock=clock))
            yield Tree(people=people_tx, history=history_tx, store=store)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
        store.close()


async def ask(topology: Tree, op: PeopleOp, **fields: object) -> ApiAnswer:
    return await topology.people_call(
        lambda reply: PeopleRequest(op=op, reply=reply, slack_user="U0ALICE", **fields)  # type: ignore[arg-type]
    )


async def audits(topology: Tree, event: str) -> list[str]:
    await topology.flush_history()
    rows = await topology.store.read(
        lambda con: con.execute(
            "SELECT detail FROM audit_log WHERE event = ? ORDER BY logged_at", [event]
        ).fetchall()
    )
    return [str(r[0]) for r in rows]


async def may_configure_acme(topology: Tree) -> int:
    answer = await ask(topology, "authorise", action=str(Action.CONFIGURE_TENANT), tenant="acme")
    return answer.status


async def test_a_hat_is_worn_for_its_time_then_expires_audited(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    async with actors(tmp_path, clock) as topology:
        assert await may_configure_acme(topology) == 403  # held, not worn
        switched = await ask(
            topology,
            "switch",
            body={
                "role": "tenant_scoped_operator",
                "tenant": "acme",
                "for": "8h",
                "why": "cover for Sam on acme",
            },
        )
        assert switched.status == 200, switched.body
        assert await may_configure_acme(topology) == 200
        [line] = await audits(topology, "hat_switched")
        assert "U0ALICE wears tenant_scoped_operator for acme until 2026-12-04T17:00" in line
        assert "cover for Sam on acme" in line

        await trio.sleep(8 * 3600 - 60)
        assert await may_configure_acme(topology) == 200
        assert await audits(topology, "hat_expired") == []
        await trio.sleep(120)
        assert await may_configure_acme(topology) == 403
        [expired] = await audits(topology, "hat_expired")
        assert "U0ALICE took off tenant_scoped_operator for acme" in expired


async def test_a_one_word_reason_or_an_unheld_role_is_refused(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    async with actors(tmp_path, TrioWallClock(ANCHOR)) as topology:
        curt = await ask(
            topology,
            "switch",
            body={"role": "tenant_scoped_operator", "tenant": "acme", "for": "8h", "why": "fix"},
        )
        assert curt.status == 400
        assert curt.body["field"] == "why"
        other = await ask(
            topology,
            "switch",
            body={"role": "tenant_scoped_operator", "tenant": "beta", "for": "1h", "why": "x y z"},
        )
        assert other.status == 403
        assert "does not hold tenant_scoped_operator for tenant 'beta'" in str(other.body["error"])
        too_long = await ask(
            topology,
            "switch",
            body={"role": "root_operator", "for": "48h", "why": "a very long shift"},
        )
        assert too_long.status == 400
        assert await audits(topology, "hat_switched") == []


async def test_a_hat_survives_a_restart_and_expires_while_down(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    async with actors(tmp_path, clock) as topology:
        switched = await ask(
            topology,
            "switch",
            body={"role": "root_operator", "for": "2h", "why": "rotate the webhook secrets"},
        )
        assert switched.status == 200
    async with actors(tmp_path, clock) as topology:  # restarted: the hat is still worn
        operate = await ask(topology, "authorise", action="operate")
        assert operate.status == 200
        assert operate.body["grant"]["via"] == "hat"  # type: ignore[index]
        # a root_operator session is refused a tenant-scoped action
        refused = await ask(topology, "authorise", action="acknowledge", tenant="acme")
        assert refused.status == 403
        assert "root_operator session is refused" in str(refused.body["error"])
    await trio.sleep(3 * 3600)  # EyeTok is down when the hat runs out
    async with actors(tmp_path, clock) as topology:
        assert (await ask(topology, "authorise", action="operate")).status == 403
        [expired] = await audits(topology, "hat_expired")
        assert "U0ALICE took off root_operator" in expired


async def test_the_files_bindings_are_audited_when_they_change(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    async with actors(tmp_path, clock) as tree:
        assert await audits(tree, "role_bound") == [
            "root_operator to U0ALICE by the configuration",
            "tenant_scoped_operator for acme to U0ALICE by the configuration",
        ]
    async with actors(tmp_path, clock) as tree:  # the same file: nothing new
        assert len(await audits(tree, "role_bound")) == 2
    fewer = CONFIG.replace(", {role: tenant_scoped_operator, tenant: acme}", "")
    async with actors(tmp_path, clock, fewer) as tree:
        assert await audits(tree, "role_unbound") == [
            "tenant_scoped_operator for acme from U0ALICE by the configuration"
        ]
        assert await may_configure_acme(tree) == 403
