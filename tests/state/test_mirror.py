"""The Postgres mirror against the real server: migrations, the writer, rehydration."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import psycopg
import pytest
import trio

from eyetok.errors import StateError
from eyetok.messages import Deliver, HandshakeRecorded, Incident, IncidentAction
from eyetok.verification import HandshakeEvent, PendingHandshake, VerificationStatus, nonce_hash
from state.history import queries
from state.history.store import HistoryStore
from state.mirror.migrate import Migration, applied_versions, load_migrations, migrate
from state.mirror.rehydrate import Rehydrated, load_from_postgres, rehydrate_into
from state.mirror.writer import (
    LOOP_BATCH_MAX,
    MirrorBatch,
    MirrorWriter,
    SlackThread,
    slack_thread_of,
)
from tests.pg import (
    T0,
    deliver,
    finished,
    incident,
    query,
    snapshotted,
    verification,
    verification_rows,
)

pytestmark = pytest.mark.postgres

NOW = T0 + timedelta(days=1)
TENANTS = ("acme", "operator")  # the tenants the rows below belong to


@pytest.fixture
def writer(pg_dsn: str) -> Iterator[MirrorWriter]:
    w = MirrorWriter(pg_dsn)
    try:
        yield w
    finally:
        w.close()


def thread_of(d: Deliver, ts: str = "1763899200.000100") -> SlackThread:
    thread = slack_thread_of(finished(d, ts=ts))
    assert thread is not None
    return thread


def incident_row(dsn: str, incident_id: str) -> dict[str, object]:
    rows = query(
        dsn,
        """SELECT status, event_count, updated_at, slack_channel, slack_ts, slack_sink_id,
                  snapshot::text FROM incident_state WHERE incident_id = %s""",
        [incident_id],
    )
    assert len(rows) == 1, f"no incident_state row for {incident_id}"
    status, count, updated_at, channel, ts, sink_id, snap = rows[0]
    return {
        "status": status,
        "event_count": count,
        "updated_at": updated_at,
        "slack_channel": channel,
        "slack_ts": ts,
        "slack_sink_id": sink_id,
        "snapshot": msgspec.json.decode(snap, type=Incident),
    }


def pending_ids(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "SELECT delivery_id FROM outbox_pending ORDER BY 1")]


# --- migrations --------------------------------------------------------------------------


ALL_VERSIONS = [m.version for m in load_migrations()]


def test_migrations_apply_once_and_are_idempotent(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        assert applied_versions(conn) == []
        assert migrate(conn) == ALL_VERSIONS
        assert migrate(conn) == []
        assert applied_versions(conn) == ALL_VERSIONS
    with psycopg.connect(pg_dsn) as conn:  # a second process finds nothing to do
        assert migrate(conn) == []

    applied = query(pg_dsn, "SELECT version, name FROM eyetok_schema_migrations ORDER BY 1")
    assert applied == [(m.version, m.name) for m in load_migrations()]
    assert applied[:4] == [
        (1, "incident_state"),
        (2, "verification_log"),
        (3, "tenant_rls"),
        (4, "pending_handshakes"),
    ]
    assert query(
        pg_dsn,
        "SELECT to_regclass('incident_state') IS NOT NULL,"
        " to_regclass('outbox_pending') IS NOT NULL,"
        " to_regclass('incident_state_tenant_status') IS NOT NULL,"
        " to_regclass('verification_log') IS NOT NULL,"
        " to_regclass('verification_log_sink_latest') IS NOT NULL",
    ) == [(True, True, True, True, True)]
    with pytest.raises(psycopg.errors.CheckViolation):
        query(
            pg_dsn,
            """INSERT INTO incident_state (incident_id, tenant_id, dedup_key, title, severity,
               status, opened_at, last_seen_at, event_count, rule, updated_at, snapshot)
               VALUES ('x', 't', 'd', 't', 'high', 'snoozed', now(), now(), 1, 'r', now(), '{}')""",
        )


def test_concurrent_migrators_apply_each_migration_once(pg_dsn: str) -> None:
    barrier = threading.Barrier(4)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with psycopg.connect(pg_dsn) as conn:
                barrier.wait(timeout=10)
                results.append(migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    # each migration holds the lock in its own transaction: the work may be shared out,
    # but every version is applied exactly once
    assert len(results) == 4
    assert sorted(v for applied in results for v in applied) == ALL_VERSIONS
    assert query(pg_dsn, "SELECT count(*) FROM eyetok_schema_migrations") == [(len(ALL_VERSIONS),)]


def test_a_failing_migration_rolls_back_whole_and_names_itself(pg_dsn: str) -> None:
    migrations = [
        *load_migrations(),
        Migration(99, "broken", "CREATE TABLE half_done (id int); SELEC nonsense;"),
    ]
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(StateError, match="0099_broken"):
            migrate(conn, migrations)
        assert applied_versions(conn) == ALL_VERSIONS
    assert query(pg_dsn, "SELECT to_regclass('half_done') IS NULL") == [(True,)]


def test_migration_files_must_be_named_by_version(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0001_again.sql").write_text("SELECT 1;")
    with pytest.raises(StateError, match="two migrations have version 1"):
        load_migrations(tmp_path)
    (tmp_path / "0001_again.sql").unlink()
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(StateError, match="NNNN_name"):
        load_migrations(tmp_path)


# --- the writer ----------------------------------------------------------------------------


def test_an_older_snapshot_never_overwrites_a_newer_one(writer: MirrorWriter, pg_dsn: str) -> None:
    old = incident("inc_1", count=1)
    new = incident("inc_1", count=5, status="acknowledged")
    writer.apply(MirrorBatch(snapshots=(snapshotted(new),)))
    writer.apply(MirrorBatch(snapshots=(snapshotted(old),)))

    row = incident_row(pg_dsn, "inc_1")
    assert row["status"] == "acknowledged"
    assert row["event_count"] == 5
    assert row["snapshot"] == new
    assert row["updated_at"] == snapshotted(new).recorded_at

    newer = incident("inc_1", count=9, status="resolved")
    writer.apply(MirrorBatch(snapshots=(snapshotted(newer),)))
    assert incident_row(pg_dsn, "inc_1")["snapshot"] == newer


def test_pending_delivery_then_closed_removes_the_row(writer: MirrorWriter, pg_dsn: str) -> None:
    inc = incident("inc_1")
    d1, d2 = deliver("dlv_1", inc), deliver("dlv_2", inc, sink_id="hook", sink_type="webhook")
    writer.apply(MirrorBatch(snapshots=(snapshotted(inc),), planned=(d1, d2)))
    assert pending_ids(pg_dsn) == ["dlv_1", "dlv_2"]
    stored = query(pg_dsn, "SELECT deliver::text FROM outbox_pending WHERE delivery_id = 'dlv_2'")
    assert msgspec.json.decode(stored[0][0], type=type(d2)) == d2

    writer.apply(MirrorBatch(planned=(d1,)))  # applied twice (a retried batch): harmless
    writer.apply(MirrorBatch(closed=("dlv_1",)))
    assert pending_ids(pg_dsn) == ["dlv_2"]
    writer.apply(MirrorBatch(closed=("dlv_1", "dlv_2")))  # deleting twice: harmless
    assert pending_ids(pg_dsn) == []


def test_a_delivered_slack_open_records_the_thread(writer: MirrorWriter, pg_dsn: str) -> None:
    inc = incident("inc_1")
    opening = deliver("dlv_open", inc, sink_id="slack-ops", target="#ops")
    writer.apply(MirrorBatch(snapshots=(snapshotted(inc),), planned=(opening,)))
    writer.apply(MirrorBatch(closed=("dlv_open",), threads=(thread_of(opening, "111.222"),)))

    row = incident_row(pg_dsn, "inc_1")
    assert (row["slack_channel"], row["slack_ts"], row["slack_sink_id"]) == (
        "#ops",
        "111.222",
        "slack-ops",
    )
    # a newer snapshot (which knows nothing of Slack) keeps the thread
    writer.apply(MirrorBatch(snapshots=(snapshotted(incident("inc_1", count=3)),)))
    row = incident_row(pg_dsn, "inc_1")
    assert (row["event_count"], row["slack_ts"]) == (3, "111.222")
    # the first thread wins, as in the history's thread_refs
    second = deliver("dlv_open_2", inc, target="#other")
    writer.apply(MirrorBatch(threads=(thread_of(second, "333.444"),)))
    assert incident_row(pg_dsn, "inc_1")["slack_ts"] == "111.222"


def test_only_a_delivered_slack_open_names_a_thread() -> None:
    inc = incident("inc_1")
    slack_open = deliver("d1", inc)
    assert slack_thread_of(finished(slack_open, ts="1.2")) == SlackThread(
        incident_id="inc_1", tenant="acme", sink_id="slack", channel="#alerts", ts="1.2"
    )
    assert slack_thread_of(finished(slack_open, outcome="dead")) is None
    update = deliver("d2", inc, action=IncidentAction.UPDATE)
    assert slack_thread_of(finished(update)) is None
    hook = deliver("d3", inc, sink_id="hook", sink_type="webhook")
    assert slack_thread_of(finished(hook)) is None


def test_a_thread_from_another_tenant_is_not_recorded(writer: MirrorWriter, pg_dsn: str) -> None:
    """An operator notice about an incident is delivered to the operator tenant's
    channel: it must not become the incident's thread."""
    inc = incident("inc_1")
    writer.apply(MirrorBatch(snapshots=(snapshotted(inc),)))
    notice = msgspec.structs.replace(deliver("dlv_notice", inc), tenant="operator")
    writer.apply(MirrorBatch(threads=(thread_of(notice),)))
    assert incident_row(pg_dsn, "inc_1")["slack_ts"] is None


def test_a_refused_row_does_not_wedge_the_batch(writer: MirrorWriter, pg_dsn: str) -> None:
    good, bad = incident("inc_good"), incident("inc_bad", status="snoozed")
    d = deliver("dlv_1", good)
    writer.apply(MirrorBatch(snapshots=(snapshotted(good), snapshotted(bad)), planned=(d,)))
    assert writer.rejected_rows == 1
    assert incident_row(pg_dsn, "inc_good")["event_count"] == 1
    assert query(pg_dsn, "SELECT count(*) FROM incident_state WHERE incident_id = 'inc_bad'") == [
        (0,)
    ]
    assert pending_ids(pg_dsn) == ["dlv_1"]


def test_nul_characters_do_not_refuse_a_row(writer: MirrorWriter, pg_dsn: str) -> None:
    inc = incident("inc_nul", title="disk \x00 full")
    writer.apply(MirrorBatch(snapshots=(snapshotted(inc),), planned=(deliver("d", inc),)))
    assert writer.rejected_rows == 0
    snapshot = incident_row(pg_dsn, "inc_nul")["snapshot"]
    assert isinstance(snapshot, Incident)
    assert snapshot.title == "disk \ufffd full"
    assert pending_ids(pg_dsn) == ["d"]


def test_quotes_and_placeholders_in_values_land_verbatim(writer: MirrorWriter, pg_dsn: str) -> None:
    # the batch is one query with its values bound client-side: they must stay values
    title = "it's a \\ back'slash'; DROP TABLE incident_state; -- %s %(x)s $1 \u00fc \U0001f6a8"
    inc = incident("inc_quote", title=title)
    d = deliver("d'1", inc, target="#it's; --")
    writer.apply(MirrorBatch(snapshots=(snapshotted(inc),), planned=(d,)))
    writer.apply(MirrorBatch(threads=(thread_of(d, ts="1.2'3"),)))
    assert writer.rejected_rows == 0
    row = incident_row(pg_dsn, "inc_quote")
    assert query(pg_dsn, "SELECT title FROM incident_state") == [(title,)]
    assert row["snapshot"] == inc
    assert (row["slack_channel"], row["slack_ts"]) == ("#it's; --", "1.2'3")
    assert pending_ids(pg_dsn) == ["d'1"]
    writer.apply(MirrorBatch(closed=("d'1",), closed_tenants={"d'1": inc.tenant}))
    assert pending_ids(pg_dsn) == []


async def test_a_batch_is_written_from_the_event_loop_once_connected(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    inc = incident("inc_loop")
    d = deliver("dlv_loop", inc)
    batch = MirrorBatch(snapshots=(snapshotted(inc),), planned=(d,))
    assert not await writer.apply_on_loop(batch)  # not connected yet: the thread's work
    assert not writer.ready
    writer.migrate()
    assert await writer.apply_on_loop(batch)
    assert await writer.apply_on_loop(MirrorBatch(threads=(thread_of(d),)))
    assert incident_row(pg_dsn, "inc_loop")["slack_ts"] == "1763899200.000100"
    assert pending_ids(pg_dsn) == ["dlv_loop"]
    assert writer.ready


async def test_a_catch_up_batch_is_left_to_the_thread(writer: MirrorWriter, pg_dsn: str) -> None:
    writer.migrate()
    many = [incident(f"inc_{i}") for i in range(LOOP_BATCH_MAX + 1)]
    batch = MirrorBatch(snapshots=tuple(snapshotted(inc) for inc in many))
    assert not await writer.apply_on_loop(batch)  # quoting it would stall the event loop
    assert writer.ready  # nothing went wrong: the connection stays
    writer.apply(batch)
    assert query(pg_dsn, "SELECT count(*) FROM incident_state") == [(len(many),)]


async def test_a_refused_batch_on_the_loop_lands_nothing_and_goes_to_the_thread(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    writer.migrate()
    good, bad = incident("inc_good"), incident("inc_bad", status="snoozed")
    batch = MirrorBatch(snapshots=(snapshotted(good), snapshotted(bad)))
    assert not await writer.apply_on_loop(batch)
    assert query(pg_dsn, "SELECT count(*) FROM incident_state") == [(0,)]  # all or nothing
    assert not writer.ready  # dropped: the thread's apply reconnects
    writer.apply(batch)  # and files the good row, refusing the bad one
    assert writer.rejected_rows == 1
    assert incident_row(pg_dsn, "inc_good")["event_count"] == 1


async def test_a_write_cancelled_mid_round_trip_drops_the_connection(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    inc = incident("inc_locked")
    writer.migrate()
    assert await writer.apply_on_loop(MirrorBatch(snapshots=(snapshotted(inc),)))
    newer = incident("inc_locked", count=2)
    with psycopg.connect(pg_dsn) as holder:  # holds the row: the upsert waits for it
        holder.execute("SELECT 1 FROM incident_state WHERE incident_id = 'inc_locked' FOR UPDATE")
        with trio.move_on_after(0.3) as waited:
            await writer.apply_on_loop(MirrorBatch(snapshots=(snapshotted(newer),)))
        assert waited.cancelled_caught
        assert not writer.ready  # its state unknown: never reused
        holder.rollback()
    writer.apply(MirrorBatch(snapshots=(snapshotted(newer),)))  # applied again: harmless
    assert incident_row(pg_dsn, "inc_locked")["event_count"] == 2


def test_verification_rows_are_appended_idempotently(writer: MirrorWriter, pg_dsn: str) -> None:
    pending = verification("slack-ops", VerificationStatus.PENDING, at=T0)
    live = verification("slack-ops", VerificationStatus.LIVE, at=T0 + timedelta(minutes=2))
    hook = verification("hook", VerificationStatus.FAILED, sink_type="webhook", at=T0)
    inc = incident("inc_1")
    batch = MirrorBatch(snapshots=(snapshotted(inc),), verifications=(pending, live, hook))
    assert len(batch) == 4
    writer.apply(batch)  # in the same transaction as the rest
    assert verification_rows(pg_dsn) == [hook, pending, live]
    assert incident_row(pg_dsn, "inc_1")["event_count"] == 1

    # a retried batch (its commit may have landed) and a row seen twice add nothing
    writer.apply(batch)
    writer.apply(MirrorBatch(verifications=(live, live)))
    assert verification_rows(pg_dsn) == [hook, pending, live]
    assert writer.rejected_rows == 0

    rows = query(
        pg_dsn,
        """SELECT sink_id, sink_type, tenant_id, status, verified_by, approved_by,
                  handshake_at, expires_at, nonce_hash, audit_log_link, detail,
                  recorded_at IS NOT NULL
           FROM verification_log WHERE sink_id = 'slack-ops' ORDER BY handshake_at""",
    )
    assert rows == [
        (
            v.sink_id,
            v.sink_type,
            v.tenant,
            v.status.value,
            v.verified_by,
            v.approved_by,
            v.handshake_at,
            v.expires_at,
            v.nonce_hash,
            v.audit_log_link,
            v.detail,
            True,
        )
        for v in (pending, live)
    ]


def test_a_verification_with_nul_characters_is_not_refused(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    v = verification("slack-ops", VerificationStatus.FAILED, detail="bad \x00 nonce")
    writer.apply(MirrorBatch(verifications=(v,)))
    assert writer.rejected_rows == 0
    [stored] = verification_rows(pg_dsn)
    assert stored == msgspec.structs.replace(v, detail="bad \ufffd nonce")


def test_the_writer_reconnects_after_its_connection_is_killed(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    writer.apply(MirrorBatch(snapshots=(snapshotted(incident("inc_1")),)))
    dbname = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    killed = query(
        pg_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name = 'eyetok-mirror'",
        [dbname],
    )
    assert killed == [(True,)]
    # the stale connection fails; the writer retries once on a fresh one
    writer.apply(MirrorBatch(snapshots=(snapshotted(incident("inc_1", count=2)),)))
    assert incident_row(pg_dsn, "inc_1")["event_count"] == 2


def test_an_unreachable_database_is_a_state_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = MirrorWriter(f"host=127.0.0.1 port={port} user=postgres dbname=nowhere")
    with contextlib.closing(w), pytest.raises(StateError, match="cannot connect"):
        w.apply(MirrorBatch(snapshots=(snapshotted(incident()),)))
    assert not w.ready
    with pytest.raises(StateError):
        load_from_postgres(
            f"host=127.0.0.1 port={port} user=postgres dbname=nowhere", tenants=TENANTS
        )


# --- rehydration ---------------------------------------------------------------------------


async def test_rehydration_restores_open_incidents_pending_deliveries_and_threads(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    a = incident("inc_a", opened_at=T0)
    b = incident("inc_b", status="acknowledged", opened_at=T0 + timedelta(minutes=1))
    c = incident("inc_c", status="resolved", opened_at=T0 + timedelta(minutes=2))
    d = incident("inc_d", status="resolved", opened_at=T0 + timedelta(minutes=3))
    opening_a = deliver("dlv_a_open", a, sink_id="slack-ops", target="#ops")
    opening_c = deliver("dlv_c_open", c)
    opening_d = deliver("dlv_d_open", d)
    update_a = deliver(
        "dlv_a_update", a, action=IncidentAction.UPDATE, planned_at=T0 + timedelta(minutes=5)
    )
    resolve_c = deliver(
        "dlv_c_resolve", c, action=IncidentAction.RESOLVE, planned_at=T0 + timedelta(minutes=6)
    )
    hook_b = deliver(
        "dlv_b_hook", b, sink_id="hook", sink_type="webhook", target="https://hook.example/x"
    )
    # the history of it, as the actor would write it
    writer.apply(
        MirrorBatch(
            snapshots=tuple(snapshotted(i) for i in (a, b, c, d)),
            planned=(opening_a, opening_c, opening_d, update_a, resolve_c, hook_b),
        )
    )
    writer.apply(
        MirrorBatch(
            closed=("dlv_a_open", "dlv_c_open", "dlv_d_open", "dlv_b_hook"),
            threads=(
                thread_of(opening_a, "100.001"),
                thread_of(opening_c, "300.003"),
                thread_of(opening_d, "400.004"),
            ),
        )
    )

    rehydrated = load_from_postgres(pg_dsn, tenants=TENANTS)
    assert rehydrated.incidents == (a, b)
    assert rehydrated.deliveries == (update_a, resolve_c)
    # threads of open incidents and of resolved ones a pending delivery posts into
    assert [(t.incident_id, t.sink_id, t.channel, t.ts) for t in rehydrated.threads] == [
        ("inc_a", "slack-ops", "#ops", "100.001"),
        ("inc_c", "slack", "#alerts", "300.003"),
    ]

    store = HistoryStore(":memory:")
    try:
        restored = await store.write(lambda con: rehydrate_into(con, rehydrated, now=NOW))
        assert restored == 2 + 2 + 2
        assert await store.read(queries.open_incidents) == [a, b]
        assert await store.read(queries.pending_deliveries) == [update_a, resolve_c]
        refs = await store.read(
            lambda con: queries.thread_refs(con, since=queries.thread_lookback(NOW))
        )
        assert refs == {
            ("slack-ops", "#ops", "inc_a"): "100.001",
            ("slack", "#alerts", "inc_c"): "300.003",
        }
        assert await store.read(queries.last_snapshot_seq) == 2

        # only into a new history
        with pytest.raises(StateError, match="empty history"):
            await store.write(lambda con: rehydrate_into(con, rehydrated, now=NOW))
    finally:
        store.close()


def test_rehydrating_an_empty_mirror_restores_nothing(writer: MirrorWriter, pg_dsn: str) -> None:
    assert len(load_from_postgres(pg_dsn, tenants=TENANTS)) == 0  # never migrated: a first deploy
    writer.migrate()
    rehydrated = load_from_postgres(pg_dsn, tenants=TENANTS)
    assert len(rehydrated) == 0
    store = HistoryStore(":memory:")
    try:
        assert rehydrate_into(store._con, rehydrated, now=NOW) == 0
        assert store._con.execute("SELECT count(*) FROM incident_snapshots").fetchone() == (0,)
    finally:
        store.close()


async def test_rehydration_restores_each_sinks_latest_verification(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    ops_pending = verification("slack-ops", VerificationStatus.PENDING, at=T0)
    ops_live = verification("slack-ops", VerificationStatus.LIVE, at=T0 + timedelta(minutes=3))
    hook_live = verification("hook", VerificationStatus.LIVE, sink_type="webhook", at=T0)
    hook_failed = verification(
        "hook", VerificationStatus.FAILED, sink_type="webhook", at=T0 + timedelta(days=30)
    )
    mail = verification("mail", VerificationStatus.PENDING, sink_type="email", at=T0)
    writer.apply(MirrorBatch(verifications=(ops_pending, hook_live, mail)))
    writer.apply(MirrorBatch(verifications=(ops_live, hook_failed)))
    # a late copy of an older row (a retried batch) does not become the latest
    writer.apply(MirrorBatch(verifications=(ops_pending,)))

    rehydrated = load_from_postgres(pg_dsn, tenants=TENANTS)
    assert rehydrated.verifications == (hook_failed, mail, ops_live)  # by sink id
    assert len(rehydrated) == 3

    store = HistoryStore(":memory:")
    try:
        restored = await store.write(lambda con: rehydrate_into(con, rehydrated, now=NOW))
        assert restored == 3
        assert await store.read(queries.latest_verifications) == {
            "slack-ops": ops_live,
            "hook": hook_failed,
            "mail": mail,
        }
        recorded = store._con.execute(
            "SELECT count(*) FROM verification_log WHERE recorded_at = ?", [NOW]
        ).fetchone()
        assert recorded == (3,)
        # only into a new history: verification rows count as history too
        nothing = Rehydrated(incidents=(), deliveries=(), threads=())
        with pytest.raises(StateError, match="empty history"):
            await store.write(lambda con: rehydrate_into(con, nothing, now=NOW))
    finally:
        store.close()


def _handshake(sink_id: str, tenant: str, secret: str) -> PendingHandshake:
    return PendingHandshake(
        key=nonce_hash(secret),
        sink_id=sink_id,
        sink_type="slack",
        tenant=tenant,
        requested_by="alice",
        opened_at=T0,
        expires_at=T0 + timedelta(hours=24),
        workspace="T0FAKE000",
    )


def _recorded(event: HandshakeEvent, h: PendingHandshake) -> HandshakeRecorded:
    return HandshakeRecorded(event=event, handshake=h, at=T0)


async def test_pending_handshakes_are_mirrored_and_rehydrated(
    writer: MirrorWriter, pg_dsn: str
) -> None:
    opened, answered = HandshakeEvent.OPENED, HandshakeEvent.CLOSED
    ops = _handshake("slack", TENANTS[0], "nonce-1")
    done = _handshake("slack", TENANTS[0], "nonce-2")
    other = _handshake(f"{TENANTS[1]}-slack", TENANTS[1], "nonce-3")
    # opened and closed in one batch: gone; applied twice (a retried batch): harmless
    batch = MirrorBatch(
        handshakes=(_recorded(opened, ops), _recorded(opened, done), _recorded(answered, done))
    )
    writer.apply(batch)
    writer.apply(batch)
    writer.apply(MirrorBatch(handshakes=(_recorded(opened, other),)))
    keys = query(pg_dsn, "SELECT key, tenant_id FROM pending_handshakes ORDER BY tenant_id")
    assert sorted(keys) == sorted([(ops.key, TENANTS[0]), (other.key, TENANTS[1])])
    assert "nonce-1" not in repr(query(pg_dsn, "SELECT handshake::text FROM pending_handshakes"))

    rehydrated = load_from_postgres(pg_dsn, tenants=TENANTS)
    assert set(rehydrated.handshakes) == {ops, other}
    store = HistoryStore(":memory:")
    try:
        await store.write(lambda con: rehydrate_into(con, rehydrated, now=NOW))
        assert await store.read(queries.open_handshakes) == {ops.key: ops, other.key: other}
    finally:
        store.close()


def test_a_mirror_without_the_verification_log_still_rehydrates(pg_dsn: str) -> None:
    """A mirror last migrated by a release before 0002 (the mirror actor migrates after
    the daemon rehydrates): incidents come back, verifications are simply none."""
    first = [m for m in load_migrations() if m.version == 1]
    writer = MirrorWriter(pg_dsn, migrations=first)
    try:
        writer.apply(MirrorBatch(snapshots=(snapshotted(incident("inc_1")),)))
    finally:
        writer.close()
    assert query(pg_dsn, "SELECT to_regclass('verification_log') IS NULL") == [(True,)]
    rehydrated = load_from_postgres(pg_dsn, tenants=TENANTS)
    assert rehydrated.incidents == (incident("inc_1"),)
    assert rehydrated.verifications == ()
