"""Layer 2 of the three that refuse a cross-tenant write: the tenant-scoped store API.
Every query of a tenant's rows carries the tenant; a scope cannot be made without one;
a row of another tenant handed to a scope is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyetok.errors import CrossTenantError
from eyetok.messages import TenantConfigEntry, TenantToken
from eyetok.tenant_api import token_hash
from state.history.journal import append_rows, snapshot_row, tenant_config_row, tenant_token_row
from state.history.store import HistoryStore
from state.history.tenant_queries import TenantScope, root_config_entries, root_tokens
from tests.pg import T0, incident


def entry(tenant: str, key: str) -> TenantConfigEntry:
    return TenantConfigEntry(
        tenant=tenant,
        kind="sink",
        key=key,
        value_json="",
        recorded_at=T0,
        recorded_by="root",
    )


def token(tenant: str, token_id: str) -> TenantToken:
    return TenantToken(
        token_id=token_id,
        tenant=tenant,
        token_hash=token_hash(token_id),
        issued_at=T0,
        issued_by="root",
    )


@pytest.fixture
async def store(tmp_path: Path) -> HistoryStore:
    store = HistoryStore(tmp_path / "history.duckdb")
    rows = [
        snapshot_row(incident("inc_a1", tenant="acme"), recorded_at=T0, seq=1),
        snapshot_row(incident("inc_a2", tenant="acme", status="resolved"), recorded_at=T0, seq=2),
        snapshot_row(incident("inc_b1", tenant="beta"), recorded_at=T0, seq=3),
        tenant_config_row(entry("acme", "acme.hook")),
        tenant_config_row(entry("beta", "beta.hook")),
        tenant_token_row(token("acme", "tok_a")),
        tenant_token_row(token("beta", "tok_b")),
    ]
    await store.write(lambda con: append_rows(con, rows))
    return store


async def test_a_query_for_one_tenant_never_sees_anothers_rows(store: HistoryStore) -> None:
    acme, beta = TenantScope("acme"), TenantScope("beta")
    assert {i.incident_id for i in await store.read(acme.incidents)} == {"inc_a1", "inc_a2"}
    assert [
        i.incident_id for i in await store.read(lambda c: acme.incidents(c, status="open"))
    ] == ["inc_a1"]
    assert [i.incident_id for i in await store.read(beta.incidents)] == ["inc_b1"]
    assert await store.read(lambda c: acme.incident(c, "inc_b1")) is None
    found = await store.read(lambda c: beta.incident(c, "inc_b1"))
    assert found is not None
    assert found.tenant == "beta"
    assert [e.key for e in await store.read(acme.config_entries)] == ["acme.hook"]
    assert [t.token_id for t in await store.read(beta.tokens)] == ["tok_b"]
    assert await store.read(TenantScope("gamma").incidents) == []
    # only the start-up rebuild (a root operation) reads every tenant
    assert {e.tenant for e in await store.read(root_config_entries)} == {"acme", "beta"}
    assert {t.tenant for t in await store.read(root_tokens)} == {"acme", "beta"}


def test_a_scope_needs_a_tenant() -> None:
    for bad in ("", "ACME", "acme; DROP TABLE incidents", None):
        with pytest.raises(CrossTenantError):
            TenantScope(bad)  # type: ignore[arg-type]


def test_a_scope_refuses_to_write_another_tenants_rows() -> None:
    acme = TenantScope("acme")
    mine = acme.entry(kind="sink", key="acme.hook", value_json="", at=T0, by="root")
    assert mine.tenant == "acme"
    assert acme.checked([mine], [token("acme", "tok_a")]) == ((mine,), (token("acme", "tok_a"),))
    with pytest.raises(CrossTenantError, match="'acme' cannot write a row of tenant 'beta'"):
        acme.checked([mine, entry("beta", "beta.hook")])
    with pytest.raises(CrossTenantError, match="'beta'"):
        acme.checked(tokens=[token("beta", "tok_b")])
