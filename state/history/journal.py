"""Writing one group commit: every table's new rows through one DuckDB appender each.

Rows are msgspec Structs whose fields are the table's columns in order; an appender takes
them as tuples and writes them in one flush, without an SQL statement to parse and plan.
"""

from __future__ import annotations

import weakref
from datetime import datetime

import duckdb
import msgspec

from eyetok.messages import Deliver, Incident, SuppressionRecorded, TenantConfigEntry, TenantToken
from eyetok.suppression import describe
from eyetok.verification import HandshakeEvent, PendingHandshake, Verification


class SignalRow(msgspec.Struct, frozen=True, gc=False):
    """A signal as journalled. ``incident_json`` is written NULL (the column stays, and
    rows journalled before carry it): the signal's incident as it stood after the signal
    is the ``incident_snapshots`` row of the same ``incident_id`` recorded in the same
    commit (``recorded_at = journalled_at``), whose ``snapshot_json`` held the same bytes.
    The key stays in the journal frame (as nil), so a frame written here still decodes
    in a build from before, should one have to replay it."""

    signal_id: str
    tenant: str
    source: str
    resource: str
    action: str
    kind: str
    dedup_key: str
    title: str
    level: str
    received_at: datetime
    journalled_at: datetime
    severity: str
    rule: str
    sev_channel: str | None
    business_hours: bool
    incident_action: str
    incident_id: str | None
    cluster_key: str | None
    signal_json: str
    incident_json: str | None = None


class SnapshotRow(msgspec.Struct, frozen=True, gc=False):
    incident_id: str
    tenant: str
    dedup_key: str
    status: str
    severity: str
    sev_channel: str | None
    rule: str
    title: str
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    event_count: int
    recorded_at: datetime
    seq: int
    snapshot_json: str


class RoutedRow(msgspec.Struct, frozen=True, gc=False):
    signal_id: str
    routed_at: datetime


class DeliveryRow(msgspec.Struct, frozen=True, gc=False):
    delivery_id: str
    signal_id: str
    tenant: str
    incident_id: str
    sink_id: str
    sink_type: str
    target: str
    action: str
    planned_at: datetime
    received_at: datetime
    deliver_json: str


class OutcomeRow(msgspec.Struct, frozen=True, gc=False):
    delivery_id: str
    outcome: str
    attempts: int
    latency_ms: float
    finished_at: datetime
    detail: str
    external_ref: str
    thread_ref: str


class AuditRow(msgspec.Struct, frozen=True, gc=False):
    logged_at: datetime
    tenant: str
    event: str
    detail: str
    incident_id: str | None
    signal_id: str | None


class VerificationRow(msgspec.Struct, frozen=True, gc=False):
    sink_id: str
    sink_type: str
    tenant: str
    status: str
    verified_by: str
    approved_by: str
    handshake_at: datetime
    expires_at: datetime | None
    nonce_hash: str
    audit_log_link: str
    detail: str
    recorded_at: datetime
    verification_json: str


class HandshakeRow(msgspec.Struct, frozen=True, gc=False):
    """A handshake opened or closed (``key``: the SHA-256 of its secret, never the secret)."""

    key: str
    event: str  # opened | closed
    sink_id: str
    sink_type: str
    tenant: str
    opened_at: datetime
    expires_at: datetime
    recorded_at: datetime
    reason: str
    handshake_json: str


class DrillReceiptRow(msgspec.Struct, frozen=True, gc=False):
    receipt_id: str
    scenario: str
    tenant: str
    started_at: datetime
    finished_at: datetime
    verdict: str
    failed_steps: str  # "scenario/step, ..." (empty when it passed)
    daemon_version: str
    recorded_at: datetime
    receipt_json: str


class SuppressionRow(msgspec.Struct, frozen=True, gc=False):
    cluster_id: str
    event: str  # fired | cleared | acknowledged
    logged_at: datetime
    cluster_key: str
    error_kind: str
    asn: str
    registry: str
    tenants: str  # JSON array of the silenced tenant ids
    tenant_count: int
    active_tenants: int
    withheld: int
    by_whom: str


def suppression_row(r: SuppressionRecorded) -> SuppressionRow:
    error_kind, asn, registry = describe(r.cluster_key)
    return SuppressionRow(
        cluster_id=r.cluster_id,
        event=r.event,
        logged_at=r.at,
        cluster_key=r.cluster_key,
        error_kind=error_kind,
        asn=asn,
        registry=registry,
        tenants=_ENCODER.encode(sorted(r.tenants)).decode(),
        tenant_count=len(r.tenants),
        active_tenants=r.active_tenants,
        withheld=r.withheld,
        by_whom=r.by,
    )


class AnomalyRow(msgspec.Struct, frozen=True, gc=False):
    anomaly_id: str
    kind: str
    tenant: str
    subject: str
    detail: str
    occurred_at: datetime
    flagged_at: datetime


class AnomalyNoteRow(msgspec.Struct, frozen=True, gc=False):
    anomaly_id: str
    verdict: str
    note: str
    noted_by: str
    noted_at: datetime


class TenantTokenRow(msgspec.Struct, frozen=True, gc=False):
    token_id: str
    tenant: str
    token_hash: str
    issued_at: datetime
    issued_by: str
    label: str
    revoked_at: datetime | None
    revoked_by: str
    token_json: str


class TenantConfigRow(msgspec.Struct, frozen=True, gc=False):
    tenant: str
    kind: str
    key: str
    value_json: str
    recorded_at: datetime
    recorded_by: str
    entry_json: str


_TABLES: dict[type[msgspec.Struct], str] = {
    SuppressionRow: "suppression_log",
    AnomalyRow: "anomalies",
    AnomalyNoteRow: "anomaly_notes",
    VerificationRow: "verification_log",
    HandshakeRow: "handshakes",
    SignalRow: "signals",
    SnapshotRow: "incident_snapshots",
    RoutedRow: "signal_routed",
    DeliveryRow: "deliveries",
    OutcomeRow: "delivery_outcomes",
    AuditRow: "audit_log",
    TenantTokenRow: "tenant_tokens",
    TenantConfigRow: "tenant_config_log",
    DrillReceiptRow: "drill_receipts",
}

_ENCODER = msgspec.json.Encoder()
_astuple = msgspec.structs.astuple
_appenders: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[str, duckdb.Appender]] = (
    weakref.WeakKeyDictionary()
)


def append_rows(con: duckdb.DuckDBPyConnection, rows: list[msgspec.Struct]) -> None:
    """Insert rows of any of the row types, one flush per table."""
    by_type: dict[type[msgspec.Struct], list[msgspec.Struct]] = {}
    for row in rows:
        by_type.setdefault(type(row), []).append(row)
    append_tables(con, list(by_type.values()))


FLUSH_ROWS = 4096
"""The most rows one flush of an appender inserts: a backlog (a restart's journal replay,
or what a burst of batched hooks journalled while the last materialisation ran) goes in
a few thousand rows at a time, in order, in the caller's one transaction."""


def append_tables(con: duckdb.DuckDBPyConnection, tables: list[list[msgspec.Struct]]) -> None:
    """Insert rows grouped by table already (each list: rows of one type), through one
    DuckDB appender per table, flushed every :data:`FLUSH_ROWS` rows."""
    appends = Appends(con)
    for group in tables:
        appends.add(group)
    appends.flush()


class Appends:
    """Rows handed to their tables' appenders as they come, flushed every
    :data:`FLUSH_ROWS` rows of a table and at :meth:`flush`: a materialisation hands over
    one journal frame's rows at a time (a frame decoded, its rows appended, the frame
    dropped) and still flushes each table once, in the caller's one transaction. Rows of a
    table go in in the order they were handed over.

    Each table's appender is kept per connection: making one costs about as much as
    flushing 100 signal rows. Python values go in as they are: a datetime becomes the
    TIMESTAMPTZ of its instant (a naive one is read in the session time zone, as its ISO
    text cast was). Before, every table's rows went in as one JSON text, unnested by
    ``from_json`` in an INSERT: DuckDB parsed, bound and constant-folded that statement
    each time, 1-2.6 ms per table whatever its size, and its rows cost twice what the
    appender's do (bench/history_append.py). Should anything fail, every appender handed
    rows here is cleared: nothing of a failed write is left for the next flush."""

    __slots__ = ("_con", "_kept", "_pending")

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        kept = _appenders.get(con)
        if kept is None:
            kept = _appenders[con] = {}
        self._con = con
        self._kept = kept
        self._pending: dict[str, int] = {}  # table: rows appended since its last flush
        # An appender refuses to flush while a result of execute() is unfinished (a
        # caller's fetchone() in the same transaction: rehydration's emptiness check); run
        # it to its end, as the next execute() would have (a no-op when there is none).
        con.complete()

    def add(self, rows: list[msgspec.Struct]) -> None:
        """Append ``rows`` (all of one row type) to their table."""
        if not rows:
            return
        table = _TABLES[type(rows[0])]
        appender = self._kept.get(table)
        if appender is None:
            appender = self._kept[table] = self._con.appender(table)
        pending = self._pending.get(table, 0)
        self._pending[table] = pending
        try:
            start = 0
            while start < len(rows):
                part = rows[start : start + FLUSH_ROWS - pending]
                appender.append_rows(map(_astuple, part))
                start += len(part)
                pending += len(part)
                if pending >= FLUSH_ROWS:
                    appender.flush()
                    pending = 0
                self._pending[table] = pending
        except BaseException:
            self.clear()
            raise

    def flush(self) -> None:
        """Flush every table that has rows appended since its last flush."""
        try:
            for table, pending in self._pending.items():
                if pending:
                    self._kept[table].flush()
                    self._pending[table] = 0
        except BaseException:
            self.clear()
            raise

    def clear(self) -> None:
        """Drop what every appender handed rows here holds unflushed."""
        for table in self._pending:
            self._kept[table].clear()


# --- building rows from domain values (the history actor and rehydration share these) ---

_encode = msgspec.json.Encoder().encode


def snapshot_row(inc: Incident, *, recorded_at: datetime, seq: int) -> SnapshotRow:
    # positional, in field order (by keyword it cost several times more: a snapshot per
    # signal of a batch); str() of a StrEnum is its value
    return SnapshotRow(
        inc.incident_id,
        inc.tenant,
        inc.dedup_key,
        inc.status,
        str(inc.severity),
        str(inc.sev_channel) if inc.sev_channel else None,
        inc.rule,
        inc.title,
        inc.opened_at,
        inc.last_seen_at,
        inc.resolved_at,
        inc.event_count,
        recorded_at,
        seq,
        _encode(inc).decode(),  # snapshot_json
    )


def delivery_row(d: Deliver, *, origin: str) -> DeliveryRow:
    """The outbox row of ``d``; ``origin`` is the signal (or whatever) that caused it."""
    return DeliveryRow(
        delivery_id=d.delivery_id,
        signal_id=origin,
        tenant=d.tenant,
        incident_id=d.incident.incident_id,
        sink_id=d.destination.sink_id,
        sink_type=d.destination.sink_type,
        target=d.destination.target,
        action=d.action.value,
        planned_at=d.planned_at,
        received_at=d.received_at,
        deliver_json=_encode(d).decode(),
    )


def verification_row(v: Verification, *, recorded_at: datetime) -> VerificationRow:
    return VerificationRow(
        sink_id=v.sink_id,
        sink_type=v.sink_type,
        tenant=v.tenant,
        status=v.status.value,
        verified_by=v.verified_by,
        approved_by=v.approved_by,
        handshake_at=v.handshake_at,
        expires_at=v.expires_at,
        nonce_hash=v.nonce_hash,
        audit_log_link=v.audit_log_link,
        detail=v.detail,
        recorded_at=recorded_at,
        verification_json=_encode(v).decode(),
    )


def handshake_row(
    event: HandshakeEvent, h: PendingHandshake, *, recorded_at: datetime, reason: str = ""
) -> HandshakeRow:
    return HandshakeRow(
        key=h.key,
        event=event.value,
        sink_id=h.sink_id,
        sink_type=h.sink_type,
        tenant=h.tenant,
        opened_at=h.opened_at,
        expires_at=h.expires_at,
        recorded_at=recorded_at,
        reason=reason,
        handshake_json=_encode(h).decode(),
    )


def tenant_token_row(t: TenantToken) -> TenantTokenRow:
    return TenantTokenRow(
        token_id=t.token_id,
        tenant=t.tenant,
        token_hash=t.token_hash,
        issued_at=t.issued_at,
        issued_by=t.issued_by,
        label=t.label,
        revoked_at=t.revoked_at,
        revoked_by=t.revoked_by,
        token_json=_encode(t).decode(),
    )


def tenant_config_row(e: TenantConfigEntry) -> TenantConfigRow:
    return TenantConfigRow(
        tenant=e.tenant,
        kind=e.kind,
        key=e.key,
        value_json=e.value_json,
        recorded_at=e.recorded_at,
        recorded_by=e.recorded_by,
        entry_json=_encode(e).decode(),
    )
