"""The writer of the Postgres mirror: one psycopg connection, one batch per transaction.

:class:`MirrorWriter`'s blocking methods are called from a worker thread (the mirror
actor runs them through ``trio.to_thread.run_sync`` with one ``CapacityLimiter(1)``).
It connects lazily, applies the migrations once after its first successful connection,
and after any connection failure drops the connection and raises :class:`StateError`;
the next call connects again. Once connected, a batch is first tried from the event loop
(:meth:`MirrorWriter.apply_on_loop`, non-blocking, under the same limiter); whatever that
does not land goes to the thread.

One batch is one transaction, in this order:

1. upsert incident snapshots; an older snapshot never overwrites a newer one
   (``updated_at`` is the snapshot's ``recorded_at``), and the Slack thread and
   acknowledgement columns are never overwritten with NULL;
2. insert pending deliveries (``ON CONFLICT DO NOTHING``: re-applying a batch is harmless);
3. delete closed deliveries;
4. record the Slack thread of a delivered Slack ``open`` on its incident (the first
   thread wins, as in the history's ``thread_refs``);
5. append verification-log rows (``ON CONFLICT DO NOTHING`` on the row's key
   ``(sink_id, handshake_at, status)``: re-applying a batch adds nothing);
6. append the tenant API's configuration entries and token rows (hashes only);
7. insert a handshake that opened, delete one that closed, in the order they happened
   (``pending_handshakes``: what a fresh dyno completes).

Every table has row-level security (migration 0003): a row is written under the
setting ``eyetok.tenant`` naming its tenant, set (transaction-local) before each
tenant's rows, so even the mirror's own writes cannot land in another tenant's rows.

Every step is idempotent, so a batch whose commit may or may not have landed is simply
applied again. A row the server refuses (``DataError``/``IntegrityError``, say a status
the CHECK does not know) must not wedge the mirror: the batch is then re-applied one row
per savepoint, the refused rows are logged and skipped, the rest commits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

from eyetok import log
from eyetok.errors import StateError
from eyetok.messages import (
    Deliver,
    DeliveryFinished,
    HandshakeRecorded,
    IncidentAction,
    IncidentSnapshotted,
    TenantConfigEntry,
    TenantToken,
)
from eyetok.verification import HandshakeEvent, Verification
from state.mirror.migrate import Migration, migrate

SLACK_SINK_TYPE = "slack"

_encode = msgspec.json.Encoder().encode

UPSERT_INCIDENT = """
INSERT INTO incident_state (
    incident_id, tenant_id, dedup_key, title, severity, sev_channel, status, opened_at,
    acknowledged_at, acknowledged_by, resolved_at, last_seen_at, event_count, rule,
    updated_at, snapshot)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (incident_id) DO UPDATE SET
    dedup_key = EXCLUDED.dedup_key,
    title = EXCLUDED.title,
    severity = EXCLUDED.severity,
    sev_channel = EXCLUDED.sev_channel,
    status = EXCLUDED.status,
    opened_at = EXCLUDED.opened_at,
    acknowledged_at = COALESCE(EXCLUDED.acknowledged_at, incident_state.acknowledged_at),
    acknowledged_by = COALESCE(EXCLUDED.acknowledged_by, incident_state.acknowledged_by),
    resolved_at = EXCLUDED.resolved_at,
    last_seen_at = EXCLUDED.last_seen_at,
    event_count = EXCLUDED.event_count,
    rule = EXCLUDED.rule,
    updated_at = EXCLUDED.updated_at,
    snapshot = EXCLUDED.snapshot
WHERE incident_state.updated_at <= EXCLUDED.updated_at
  AND incident_state.tenant_id = EXCLUDED.tenant_id
"""

INSERT_PENDING = """
INSERT INTO outbox_pending (
    delivery_id, tenant_id, incident_id, sink_id, sink_type, target, action, planned_at,
    deliver)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (delivery_id) DO NOTHING
"""

DELETE_CLOSED = "DELETE FROM outbox_pending WHERE delivery_id = ANY(%s)"

SET_THREAD = """
UPDATE incident_state SET slack_channel = %s, slack_ts = %s, slack_sink_id = %s
WHERE incident_id = %s AND tenant_id = %s AND slack_ts IS NULL
"""

INSERT_VERIFICATION = """
INSERT INTO verification_log (
    sink_id, sink_type, tenant_id, status, verified_by, approved_by, handshake_at,
    expires_at, nonce_hash, audit_log_link, detail, verification)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (sink_id, handshake_at, status) DO NOTHING
"""

INSERT_TENANT_ENTRY = """
INSERT INTO tenant_config_log (
    tenant_id, kind, key, value_json, recorded_at, recorded_by, entry)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (tenant_id, kind, key, recorded_at) DO NOTHING
"""

INSERT_TENANT_TOKEN = """
INSERT INTO tenant_tokens (
    token_id, row_kind, tenant_id, token_hash, issued_at, issued_by, label, revoked_at,
    revoked_by, token)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (token_id, row_kind) DO NOTHING
"""

OPEN_HANDSHAKE = """
INSERT INTO pending_handshakes (
    key, tenant_id, sink_id, sink_type, opened_at, expires_at, handshake)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (key) DO NOTHING
"""

CLOSE_HANDSHAKE = "DELETE FROM pending_handshakes WHERE key = %s"

# Set-based forms of the two statements every signal writes: one JSON parameter holds
# every row of one tenant (``jsonb_to_recordset``), so a batch costs one statement per
# table and tenant rather than one Bind/Execute per row (psycopg adapts one string, the
# server plans once). Same columns, same conflict rules as the one-row forms above,
# which the row-by-row fallback still uses.
SNAPSHOT_COLUMNS = (
    "incident_id text, tenant_id text, dedup_key text, title text, severity text, "
    "sev_channel text, status text, opened_at timestamptz, acknowledged_at timestamptz, "
    "acknowledged_by text, resolved_at timestamptz, last_seen_at timestamptz, "
    "event_count integer, rule text, updated_at timestamptz, snapshot jsonb"
)
UPSERT_INCIDENTS = UPSERT_INCIDENT.replace(
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
    "SELECT incident_id, tenant_id, dedup_key, title, severity, sev_channel, status,\n"
    "    opened_at, acknowledged_at, acknowledged_by, resolved_at, last_seen_at,\n"
    "    event_count, rule, updated_at, snapshot\n"
    f"FROM jsonb_to_recordset(%s::jsonb) AS r({SNAPSHOT_COLUMNS})",
)
PENDING_COLUMNS = (
    "delivery_id text, tenant_id text, incident_id text, sink_id text, sink_type text, "
    "target text, action text, planned_at timestamptz, deliver jsonb"
)
INSERT_PENDINGS = INSERT_PENDING.replace(
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
    "SELECT delivery_id, tenant_id, incident_id, sink_id, sink_type, target, action,\n"
    "    planned_at, deliver\n"
    f"FROM jsonb_to_recordset(%s::jsonb) AS r({PENDING_COLUMNS})",
)
_SNAPSHOT_KEYS = tuple(c.split()[0] for c in SNAPSHOT_COLUMNS.split(", "))
_PENDING_KEYS = tuple(c.split()[0] for c in PENDING_COLUMNS.split(", "))

# The largest batch written from the event loop (apply_on_loop): its quoting runs there,
# ~8 us per change (~2 ms for 256); a larger one (a catch-up after an outage) goes to the
# thread.
LOOP_BATCH_MAX = 256

# Row-level security: the tenant whose rows the next statements write (until commit).
SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"


@dataclass(frozen=True, slots=True)
class SlackThread:
    """The thread a delivered Slack ``open`` started for an incident."""

    incident_id: str
    tenant: str
    sink_id: str
    channel: str
    ts: str


def slack_thread_of(finished: DeliveryFinished) -> SlackThread | None:
    """The thread a finished delivery opened, if it was a delivered Slack ``open``."""
    if (
        finished.sink_type != SLACK_SINK_TYPE
        or finished.action is not IncidentAction.OPEN
        or finished.outcome != "delivered"
    ):
        return None
    ts = finished.thread_ref or finished.external_ref
    if not ts:
        return None
    return SlackThread(
        incident_id=finished.incident_id,
        tenant=finished.tenant,
        sink_id=finished.sink_id,
        channel=finished.target,
        ts=ts,
    )


@dataclass(frozen=True, slots=True)
class MirrorBatch:
    """What one transaction writes; the mirror actor builds it already coalesced (one
    snapshot per incident, the newest; a delivery planned and closed in the same window
    appears in neither set). Verification-log rows are never coalesced: every one is
    appended, in the order recorded."""

    snapshots: tuple[IncidentSnapshotted, ...] = ()
    planned: tuple[Deliver, ...] = ()
    closed: tuple[str, ...] = ()  # delivery ids
    threads: tuple[SlackThread, ...] = ()
    verifications: tuple[Verification, ...] = ()
    # the tenant of each closed delivery (row-level security deletes only under it)
    closed_tenants: dict[str, str] = field(default_factory=dict)
    tenant_entries: tuple[TenantConfigEntry, ...] = ()
    tenant_tokens: tuple[TenantToken, ...] = ()
    handshakes: tuple[HandshakeRecorded, ...] = ()  # opened and closed, in order

    def __len__(self) -> int:
        return (
            len(self.handshakes)
            + len(self.snapshots)
            + len(self.planned)
            + len(self.closed)
            + len(self.threads)
            + len(self.verifications)
            + len(self.tenant_entries)
            + len(self.tenant_tokens)
        )

    def grouped(self) -> list[tuple[str, str, list[tuple[object, ...]]]]:
        """(tenant, statement, rows) in the order they are written: the snapshots and the
        pending deliveries set-based (one JSON parameter per table and tenant), every
        other statement a run of rows for one tenant."""
        groups: list[tuple[str, str, list[tuple[object, ...]]]] = []
        for statement, keys, rows in (
            (UPSERT_INCIDENTS, _SNAPSHOT_KEYS, [snapshot_params(s) for s in self.snapshots]),
            (INSERT_PENDINGS, _PENDING_KEYS, [pending_params(d) for d in self.planned]),
        ):
            by_tenant: dict[str, list[dict[str, object]]] = {}
            for params in rows:
                record = dict(zip(keys, params, strict=True))
                record[keys[-1]] = msgspec.Raw(str(params[-1]).encode())  # already JSON
                by_tenant.setdefault(str(params[1]), []).append(record)
            groups += [
                (tenant, statement, [(_encode(records).decode(),)])
                for tenant, records in by_tenant.items()
            ]
        for tenant, _what, statement, params in self.statements(set_based=True):
            if groups and groups[-1][0] == tenant and groups[-1][1] == statement:
                groups[-1][2].append(params)
            else:
                groups.append((tenant, statement, [params]))
        return groups

    def statements(
        self, *, set_based: bool = False
    ) -> list[tuple[str, str, str, tuple[object, ...]]]:
        """(tenant, what, statement, params) in the order they are written; with
        ``set_based`` without the snapshots and pending deliveries (:meth:`grouped`
        writes those set-based)."""
        out: list[tuple[str, str, str, tuple[object, ...]]] = []
        if not set_based:
            out += [
                (
                    s.incident.tenant,
                    f"incident {s.incident.incident_id}",
                    UPSERT_INCIDENT,
                    snapshot_params(s),
                )
                for s in self.snapshots
            ]
            out += [
                (d.tenant, f"delivery {d.delivery_id}", INSERT_PENDING, pending_params(d))
                for d in self.planned
            ]
        by_tenant: dict[str, list[str]] = {}
        for delivery_id in self.closed:
            by_tenant.setdefault(self.closed_tenants.get(delivery_id, ""), []).append(delivery_id)
        out += [
            (tenant, "closed deliveries", DELETE_CLOSED, (ids,))
            for tenant, ids in by_tenant.items()
        ]
        out += [
            (t.tenant, f"thread of {t.incident_id}", SET_THREAD, thread_params(t))
            for t in self.threads
        ]
        out += [
            (
                v.tenant,
                f"verification of {v.sink_id} ({v.status.value})",
                INSERT_VERIFICATION,
                verification_params(v),
            )
            for v in self.verifications
        ]
        out += [
            (e.tenant, f"tenant {e.kind} {e.key}", INSERT_TENANT_ENTRY, tenant_entry_params(e))
            for e in self.tenant_entries
        ]
        out += [
            (t.tenant, f"token {t.token_id}", INSERT_TENANT_TOKEN, tenant_token_params(t))
            for t in self.tenant_tokens
        ]
        out += [
            (
                h.handshake.tenant,
                f"handshake of {h.handshake.sink_id} ({h.event.value})",
                OPEN_HANDSHAKE if h.event is HandshakeEvent.OPENED else CLOSE_HANDSHAKE,
                handshake_params(h),
            )
            for h in self.handshakes
        ]
        return out


def _clean(value: object) -> object:
    # Postgres text cannot hold NUL; a stray one in a title must not refuse the row.
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_nul(v) for k, v in value.items()}
    return value


def _json(value: msgspec.Struct) -> str:
    text = _encode(value).decode()
    if "\\u0000" in text:  # jsonb refuses \u0000 too
        text = _encode(_strip_nul(msgspec.json.decode(text))).decode()
    return text


def snapshot_params(message: IncidentSnapshotted) -> tuple[object, ...]:
    inc = message.incident
    params = (
        inc.incident_id,
        inc.tenant,
        inc.dedup_key,
        inc.title,
        inc.severity.value,
        inc.sev_channel.value if inc.sev_channel else None,
        inc.status,
        inc.opened_at,
        inc.acknowledged_at,
        inc.acknowledged_by,
        inc.resolved_at,
        inc.last_seen_at,
        inc.event_count,
        inc.rule,
        message.recorded_at,
        _json(inc),
    )
    return tuple(_clean(p) for p in params)


def pending_params(deliver: Deliver) -> tuple[object, ...]:
    dest = deliver.destination
    params = (
        deliver.delivery_id,
        deliver.tenant,
        deliver.incident.incident_id,
        dest.sink_id,
        dest.sink_type,
        dest.target,
        deliver.action.value,
        deliver.planned_at,
        _json(deliver),
    )
    return tuple(_clean(p) for p in params)


def thread_params(thread: SlackThread) -> tuple[object, ...]:
    params = (thread.channel, thread.ts, thread.sink_id, thread.incident_id, thread.tenant)
    return tuple(_clean(p) for p in params)


def verification_params(v: Verification) -> tuple[object, ...]:
    params = (
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
        _json(v),
    )
    return tuple(_clean(p) for p in params)


def tenant_entry_params(e: TenantConfigEntry) -> tuple[object, ...]:
    params = (e.tenant, e.kind, e.key, e.value_json, e.recorded_at, e.recorded_by, _json(e))
    return tuple(_clean(p) for p in params)


def handshake_params(h: HandshakeRecorded) -> tuple[object, ...]:
    if h.event is HandshakeEvent.CLOSED:
        return (h.handshake.key,)
    found = h.handshake
    params = (
        found.key,
        found.tenant,
        found.sink_id,
        found.sink_type,
        found.opened_at,
        found.expires_at,
        _json(found),
    )
    return tuple(_clean(p) for p in params)


def tenant_token_params(t: TenantToken) -> tuple[object, ...]:
    params = (
        t.token_id,
        "issued" if t.revoked_at is None else "revoked",
        t.tenant,
        t.token_hash,
        t.issued_at,
        t.issued_by,
        t.label,
        t.revoked_at,
        t.revoked_by,
        _json(t),
    )
    return tuple(_clean(p) for p in params)


class _ConnectionLost(StateError):
    """The connection broke under a write (as opposed to the server refusing it)."""


class MirrorWriter:
    """Writes mirror batches to Postgres over one lazily opened connection.

    Blocking, and not thread-safe: call it from one worker thread at a time.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: int = 5,
        migrations: list[Migration] | None = None,
    ) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._migrations = migrations
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._migrated = False
        self.rejected_rows = 0
        self._log = log.get("mirror")

    # --- connection -----------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[TupleRow]:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        try:
            self._conn = psycopg.connect(
                self.dsn,
                # a batch is one multi-statement query: one implicit transaction
                autocommit=True,
                connect_timeout=max(2, self.connect_timeout_s),
                application_name="eyetok-mirror",
                # a dead peer (no RST) is noticed in tens of seconds, not hours
                keepalives=1,
                keepalives_idle=15,
                keepalives_interval=5,
                keepalives_count=3,
                tcp_user_timeout=30_000,
            )
        except psycopg.Error as exc:
            raise StateError(f"cannot connect to the mirror database: {exc}") from exc
        return self._conn

    def _discard(self) -> None:
        import psycopg

        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def migrate(self) -> list[int]:
        """Connect if needed and apply pending migrations (once per writer); return the
        versions applied now. Raises :class:`StateError`."""
        import psycopg

        conn = self._connection()
        if self._migrated:
            return []
        try:
            applied = migrate(conn, self._migrations)
        except psycopg.Error as exc:
            self._discard()
            raise StateError(f"mirror migrations failed: {exc}") from exc
        except StateError:
            self._discard()
            raise
        self._migrated = True
        if applied:
            self._log.info("mirror_migrated", versions=applied)
        return applied

    @property
    def ready(self) -> bool:
        """Connected and migrated (as far as the writer knows)."""
        return self._migrated and self._conn is not None and not self._conn.closed

    # --- writing --------------------------------------------------------------------

    def apply(self, batch: MirrorBatch) -> None:
        """Write one batch in one transaction. Connects (and migrates) first, even for an
        empty batch: after a failure, an empty batch is the probe that finds the database
        back. Raises :class:`StateError`."""
        reused = self._conn is not None and not self._conn.closed
        self.migrate()
        if not len(batch):
            return
        try:
            self._apply_once(batch)
        except _ConnectionLost:
            if not reused:
                raise
            # The connection had sat idle and the server (or a proxy) dropped it since:
            # once more on a fresh one before reporting the database down.
            self.migrate()
            self._apply_once(batch)

    def _apply_once(self, batch: MirrorBatch) -> None:
        import psycopg

        conn = self._connection()
        try:
            try:
                self._write(conn, batch)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                if conn.broken:
                    raise
                self._log.warning("mirror_batch_refused", error=str(exc), items=len(batch))
                self._write_row_by_row(conn, batch)
        except psycopg.Error as exc:
            broken = conn.broken or isinstance(exc, psycopg.OperationalError)
            self._discard()
            error = _ConnectionLost if broken else StateError
            raise error(f"mirror write failed: {exc}") from exc

    async def apply_on_loop(self, batch: MirrorBatch) -> bool:
        """Write one batch as :meth:`apply` does, from the event loop, without a worker
        thread: the query goes out and its results come back through libpq's
        non-blocking calls (psycopg's documented ``pq`` wrapper), the task waiting on the
        socket with ``trio.lowlevel``. False if it did not land here (not connected yet,
        the server refused it, the connection failed, or cancelled mid-write: then the
        connection is dropped, its state unknown); the caller then writes it with
        :meth:`apply` in a thread, which reconnects, retries, falls back to row by row
        and raises :class:`StateError`. Every step is idempotent, so a batch that may
        have landed here is simply applied again there.

        Why not the thread alone: a 202 in postgres durability waits for this round
        trip, and the hop into a worker thread and back (the thread waking, taking the
        GIL from the busy event loop, then ``run_sync_soon`` and a turn of the run queue)
        measured as long as Postgres's own commit under load. psycopg's own async
        connection runs on asyncio only, hence these few libpq calls."""
        import psycopg
        import trio
        from psycopg import pq

        conn = self._conn
        if not self._migrated or conn is None or conn.closed or not len(batch):
            return False
        if len(batch) > LOOP_BATCH_MAX:
            return False  # a catch-up after an outage: quoting it would stall the loop
        pgconn = conn.pgconn
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            query = self._query(conn, batch).encode(conn.info.encoding)
            fd = pgconn.socket
            pgconn.send_query(query)
            while pgconn.flush():  # 1: more to send; the server may be answering
                await trio.lowlevel.wait_writable(fd)
                pgconn.consume_input()
            landed = True
            while True:
                pgconn.consume_input()
                while pgconn.is_busy():
                    await trio.lowlevel.wait_readable(fd)
                    pgconn.consume_input()
                result = pgconn.get_result()
                if result is None:
                    break
                if result.status == pq.ExecStatus.FATAL_ERROR:
                    landed = False
            ok = landed and pgconn.transaction_status == pq.TransactionStatus.IDLE
        except (psycopg.Error, OSError):
            ok = False
        except BaseException:
            self._discard()  # cancelled mid-round-trip: what the server did is unknown
            raise
        if not ok or pgconn.status != pq.ConnStatus.OK:
            self._discard()
        return ok

    def _query(self, conn: psycopg.Connection[TupleRow], batch: MirrorBatch) -> str:
        """The batch as one multi-statement query, values bound by psycopg's quoting."""
        import psycopg

        cur = psycopg.ClientCursor(conn)
        parts: list[str] = []
        current: str | None = None
        for tenant, statement, rows in batch.grouped():
            if tenant != current:
                parts.append(cur.mogrify(SET_TENANT, [tenant]))
                current = tenant
            parts += [cur.mogrify(statement, row) for row in rows]
        return ";\n".join(parts)

    def _write(self, conn: psycopg.Connection[TupleRow], batch: MirrorBatch) -> None:
        """The batch in one transaction: the snapshots and pending deliveries of each
        tenant as one set-based statement, every other row as its own statement, all
        under that tenant's ``eyetok.tenant``.

        The statements go as one simple-protocol query (parameters bound client-side by
        psycopg's own quoting), which Postgres runs as one implicit transaction: one
        message out, one round trip, no BEGIN or COMMIT of its own, and a failing
        statement rolls back the whole batch. In postgres durability a 202 waits for
        this and the thread's CPU comes out of the event loop's GIL: psycopg's pipeline
        (BEGIN, each statement, COMMIT and the sync, each a turn of its generators) cost
        the thread ~0.53 ms of CPU per transaction of 8 signals, this ~0.37 ms."""
        conn.execute(self._query(conn, batch))  # no parameters: the simple protocol

    def _write_row_by_row(self, conn: psycopg.Connection[TupleRow], batch: MirrorBatch) -> None:
        import psycopg

        with conn.transaction(), conn.cursor() as cur:
            for tenant, what, statement, params in batch.statements():
                try:
                    with conn.transaction():  # a savepoint per row
                        cur.execute(SET_TENANT, [tenant])
                        cur.execute(statement, params)
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    self.rejected_rows += 1
                    self._log.error("mirror_row_rejected", row=what, error=str(exc))

    def close(self) -> None:
        self._discard()
