"""Who may do what, mirrored: a role bound through the API, a hat and a proposed rule
change reach Postgres (the ``access_log`` view of migration 0008) and a fresh dyno (an
empty data directory, the same Postgres) still knows them."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from eyetok.config import Settings
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, start_daemon
from tests.http.test_access import CONFIG, NEW_ROUTES, token_of
from tests.pg import query
from tests.verify import ROOT_TOKEN, tenant_slack_token

ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}


async def test_bindings_hats_and_pending_changes_survive_a_fresh_dyno(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    def settings(data: Path) -> Settings:
        return daemon_settings(
            data,
            fake_slack,
            config=CONFIG,
            DATABASE_URL=pg_dsn,
            ACME_SLACK_TOKEN=tenant_slack_token(fake_slack, "acme"),
        )

    daemon = await start_daemon(nursery, settings(tmp_path / "first"))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=10.0
    ) as api:
        bound = await api.put("/api/v1/people/U0DAVE/roles/responder?tenant=acme", headers=ROOT)
        assert bound.status_code == 200, bound.text
        alice = await token_of(api, "U0ALICE")
        worn = await api.post(
            "/api/v1/role/switch",
            json={
                "role": "tenant_scoped_operator",
                "tenant": "acme",
                "for": "8h",
                "why": "move acme pages",
            },
            headers=alice,
        )
        assert worn.status_code == 200, worn.text
        proposed = await api.put(
            "/api/v1/tenants/acme/routes",
            json={**NEW_ROUTES, "why": "acme moved its on-call to the war room"},
            headers=alice,
        )
        assert proposed.status_code == 202, proposed.text
        change_id = proposed.json()["change"]["change_id"]

    async def mirrored() -> bool:
        rows = await trio.to_thread.run_sync(
            query,
            pg_dsn,
            "SELECT kind FROM access_log WHERE recorded_by <> 'config' ORDER BY recorded_at",
        )
        return [r[0] for r in rows] == ["role_binding", "person_token", "hat", "rule_change"]

    await eventually(mirrored)
    [(what,)] = query(
        pg_dsn, "SELECT what FROM access_log WHERE kind = 'role_binding' AND recorded_by = 'root'"
    )
    assert what == {
        "person": "U0DAVE",
        "role": "responder",
        "tenant": "acme",
        "bound": True,
        "by": "root",
    }
    [(hashed,)] = query(
        pg_dsn, "SELECT what->>'token_hash' FROM access_log WHERE kind = 'person_token'"
    )
    assert len(hashed) == 64  # the token itself is never stored
    daemon.request_stop()
    await trio.sleep(1.0)

    fresh = await start_daemon(nursery, settings(tmp_path / "fresh"))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{fresh.bound_port}", timeout=10.0
    ) as api:
        people = (await api.get("/api/v1/people", headers=ROOT)).json()
        assert {
            "person": "U0DAVE",
            "role": "responder",
            "tenant": "acme",
            "source": "api",
        } in people["bindings"]
        assert [h["person"] for h in people["hats"]] == ["U0ALICE"]
        pending = await api.get("/api/v1/changes", params={"status": "pending"}, headers=ROOT)
        assert [c["change_id"] for c in pending.json()["changes"]] == [change_id]
    fresh.request_stop()
