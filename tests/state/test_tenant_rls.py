"""Layer 3 of the three that refuse a cross-tenant write: row-level security on the
Postgres mirror, tested directly against Postgres as a role that is NOT a superuser
(superusers and BYPASSRLS roles skip RLS) and that owns the tables, as the mirror's own
role does on a managed Postgres: the tables FORCE row-level security on their owner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from eyetok.messages import HandshakeRecorded, TenantConfigEntry, TenantToken
from eyetok.playbooks.ledger import PlaybookEvent
from eyetok.tenant_api import token_hash
from eyetok.verification import HandshakeEvent, PendingHandshake, nonce_hash
from state.mirror.rehydrate import load_from_postgres
from state.mirror.writer import MirrorBatch, MirrorWriter
from state.playbooks.pg_ledger import PgLedger
from tests.pg import (
    T0,
    app_role,
    deliver,
    incident,
    query,
    snapshotted,
    verification,
)

TABLES = (
    "incident_state",
    "outbox_pending",
    "verification_log",
    "tenant_config_log",
    "tenant_tokens",
    "pending_handshakes",
    "playbook_events",
)


def playbook_event(tenant: str) -> PlaybookEvent:
    return PlaybookEvent(
        event_id=f"pbe_{tenant}",
        event="triage_ran",
        at=T0,
        incident=incident(f"inc_{tenant}", tenant=tenant),
        playbook="p",
    )


@pytest.fixture
def app_dsn(pg_dsn: str) -> Iterator[str]:
    with app_role(pg_dsn) as dsn:
        yield dsn


def entry(tenant: str, key: str = "routes") -> TenantConfigEntry:
    return TenantConfigEntry(
        tenant=tenant,
        kind="routes",
        key=key,
        value_json='{"SEV1": []}',
        recorded_at=T0,
        recorded_by="root",
    )


def token(tenant: str, token_id: str) -> TenantToken:
    return TenantToken(
        token_id=token_id,
        tenant=tenant,
        token_hash=token_hash(f"etk_{token_id}"),
        issued_at=T0,
        issued_by="root",
    )


def both_tenants_batch() -> MirrorBatch:
    acme, beta = incident("inc_a", tenant="acme"), incident("inc_b", tenant="beta")
    return MirrorBatch(
        snapshots=(snapshotted(acme), snapshotted(beta)),
        planned=(deliver("dlv_a", acme), deliver("dlv_b", beta), deliver("dlv_b2", beta)),
        verifications=(
            verification("acme-slack", tenant="acme"),
            verification("beta-slack", tenant="beta"),
        ),
        tenant_entries=(entry("acme"), entry("beta")),
        tenant_tokens=(token("acme", "tok_a"), token("beta", "tok_b")),
        handshakes=(handshake("acme"), handshake("beta")),
    )


def handshake(tenant: str) -> HandshakeRecorded:
    opened = PendingHandshake(
        key=nonce_hash(f"nonce-of-{tenant}"),
        sink_id=f"{tenant}-slack",
        sink_type="slack",
        tenant=tenant,
        requested_by="root",
        opened_at=T0,
        expires_at=T0 + timedelta(hours=24),
    )
    return HandshakeRecorded(event=HandshakeEvent.OPENED, handshake=opened, at=T0)


def as_tenant(dsn: str, tenant: str | None, statement: str, params: object = None) -> list[tuple]:  # type: ignore[type-arg]
    """One statement in a transaction that first sets eyetok.tenant (None: not set)."""
    with psycopg.connect(dsn) as conn:
        if tenant is not None:
            conn.execute("SELECT set_config('eyetok.tenant', %s, true)", [tenant])
        cur = conn.execute(statement, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else [(cur.rowcount,)]


def test_the_role_is_bound_by_rls_and_owns_the_tables(app_dsn: str, pg_dsn: str) -> None:
    writer = MirrorWriter(app_dsn)
    writer.migrate()
    writer.close()
    assert query(
        app_dsn, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ) == [(False, False)]
    rows = query(
        pg_dsn,
        "SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner)"
        " FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
        [list(TABLES)],
    )
    role = query(app_dsn, "SELECT current_user")[0][0]
    assert rows == [(t, True, True, role) for t in sorted(TABLES)]


def test_the_mirror_writes_every_tenant_and_each_sees_only_its_own(
    app_dsn: str, pg_dsn: str
) -> None:
    writer = MirrorWriter(app_dsn)
    writer.apply(both_tenants_batch())
    writer.apply(MirrorBatch(closed=("dlv_b2",), closed_tenants={"dlv_b2": "beta"}))
    writer.close()
    playbooks = PgLedger(app_dsn)
    playbooks.append([playbook_event("acme"), playbook_event("beta")])
    assert [e.incident.tenant for e in playbooks.load(("acme",))] == ["acme"]
    playbooks.close()

    for table in TABLES:
        # without the tenant set, the mirror's own role sees nothing at all
        assert query(app_dsn, f"SELECT count(*) FROM {table}") == [(0,)], table
        assert as_tenant(app_dsn, "acme", f"SELECT DISTINCT tenant_id FROM {table}") == [
            ("acme",)
        ], table
        assert as_tenant(app_dsn, "beta", f"SELECT DISTINCT tenant_id FROM {table}") == [
            ("beta",)
        ], table
        # the rows are there (a superuser is not bound by row-level security)
        assert query(pg_dsn, f"SELECT count(DISTINCT tenant_id) FROM {table}") == [(2,)], table
    assert query(pg_dsn, "SELECT delivery_id FROM outbox_pending ORDER BY 1") == [
        ("dlv_a",),
        ("dlv_b",),
    ]

    # Rehydration as the same role reads tenant by tenant and restores both.
    restored = load_from_postgres(app_dsn, tenants=("acme", "beta"))
    assert {i.tenant for i in restored.incidents} == {"acme", "beta"}
    assert {d.delivery_id for d in restored.deliveries} == {"dlv_a", "dlv_b"}
    assert {v.sink_id for v in restored.verifications} == {"acme-slack", "beta-slack"}
    assert restored.tenant_entries == (entry("acme"), entry("beta"))
    assert {t.token_id for t in restored.tenant_tokens} == {"tok_a", "tok_b"}
    assert {h.tenant for h in restored.handshakes} == {"acme", "beta"}
    # ...and only the tenants it is asked for.
    only_acme = load_from_postgres(app_dsn, tenants=("acme",))
    assert {i.tenant for i in only_acme.incidents} == {"acme"}
    assert {t.tenant for t in only_acme.tenant_tokens} == {"acme"}


def test_cross_tenant_writes_are_refused_by_row_level_security(app_dsn: str, pg_dsn: str) -> None:
    writer = MirrorWriter(app_dsn)
    writer.apply(both_tenants_batch())
    writer.close()
    before = query(pg_dsn, "SELECT * FROM incident_state ORDER BY incident_id")

    # Writing a row of beta while scoped to acme: refused outright.
    for statement, params in (
        (
            "INSERT INTO tenant_config_log (tenant_id, kind, key, value_json, recorded_at,"
            " recorded_by, entry) VALUES ('beta', 'routes', 'routes', '', now(), 'x', '{}')",
            None,
        ),
        (
            "INSERT INTO tenant_tokens (token_id, row_kind, tenant_id, token_hash, issued_at,"
            " issued_by, label, revoked_by, token) VALUES ('tok_x', 'issued', 'beta', %s,"
            " now(), 'x', '', '', '{}')",
            [token_hash("etk_planted")],
        ),
        ("UPDATE incident_state SET tenant_id = 'beta' WHERE incident_id = 'inc_a'", None),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            as_tenant(app_dsn, "acme", statement, params)

    # Changing or deleting beta's rows while scoped to acme: they are not there to touch.
    assert as_tenant(
        app_dsn, "acme", "UPDATE incident_state SET title = 'pwned' WHERE tenant_id = 'beta'"
    ) == [(0,)]
    assert as_tenant(app_dsn, "acme", "DELETE FROM tenant_tokens WHERE tenant_id = 'beta'") == [
        (0,)
    ]
    assert as_tenant(app_dsn, "acme", "DELETE FROM outbox_pending WHERE delivery_id = 'dlv_b'") == [
        (0,)
    ]
    # With no tenant set, nothing can be written, not even a row of one's own.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        as_tenant(
            app_dsn,
            None,
            "INSERT INTO tenant_config_log (tenant_id, kind, key, value_json, recorded_at,"
            " recorded_by, entry) VALUES ('acme', 'routes', 'routes', '', now(), 'x', '{}')",
        )
    assert as_tenant(app_dsn, None, "UPDATE incident_state SET title = 'pwned'") == [(0,)]

    assert query(pg_dsn, "SELECT * FROM incident_state ORDER BY incident_id") == before
    assert query(pg_dsn, "SELECT count(*) FROM tenant_tokens WHERE tenant_id = 'beta'") == [(1,)]
    assert query(pg_dsn, "SELECT count(*) FROM tenant_config_log") == [(2,)]
    # a mirror batch whose rows the writer files under their own tenants still lands
    later = incident("inc_a", tenant="acme", count=2, opened_at=T0)
    writer = MirrorWriter(app_dsn)
    writer.apply(MirrorBatch(snapshots=(snapshotted(later, at=T0 + timedelta(hours=2)),)))
    writer.close()
    assert as_tenant(app_dsn, "acme", "SELECT event_count FROM incident_state") == [(2,)]
