"""The digest reader's Postgres mirror (migration 0007): one row per operator digest with
its read receipt and escalation, upserted as they change and read back on start, so a
fresh dyno keeps the digests' timers. Blocking; the digests actor calls it from a worker
thread, one call at a time. Rows are the operator tenant's (row-level security, as every
mirror table)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from eyetok.digests import DigestReceipt
from eyetok.errors import StateError
from state.mirror.connection import LazyConnection

_SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"
_UPSERT = """
INSERT INTO digest_receipts AS d (what, tenant_id, title, posted_at, acknowledged_by,
    acknowledged_at, escalated_at, receipt)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (what) DO UPDATE SET
    acknowledged_by = COALESCE(d.acknowledged_by, EXCLUDED.acknowledged_by),
    acknowledged_at = COALESCE(d.acknowledged_at, EXCLUDED.acknowledged_at),
    escalated_at = COALESCE(d.escalated_at, EXCLUDED.escalated_at),
    receipt = EXCLUDED.receipt
"""
_OPEN_SINCE = """
SELECT receipt::text FROM digest_receipts WHERE tenant_id = %s AND posted_at >= %s
ORDER BY posted_at
"""
_decode = msgspec.json.Decoder(DigestReceipt).decode
_encode = msgspec.json.Encoder().encode


class DigestReceipts:
    """One lazily opened connection to the mirror database."""

    def __init__(self, dsn: str, tenant: str) -> None:
        self.dsn = dsn
        self.tenant = tenant
        self._pg = LazyConnection(dsn, "eyetok-digests")

    def save(self, receipts: Iterable[DigestReceipt]) -> None:
        """Upsert ``receipts`` in one transaction (a receipt or an escalation, once
        recorded, is never undone). Raises :class:`StateError`."""
        import psycopg

        rows = [
            (
                r.what,
                self.tenant,
                r.title,
                r.posted_at,
                r.acknowledged_by,
                r.acknowledged_at,
                r.escalated_at,
                _encode(r).decode(),
            )
            for r in receipts
        ]
        try:
            conn = self._pg.get()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_SET_TENANT, [self.tenant])
                cur.executemany(_UPSERT, rows)
        except psycopg.Error as exc:
            self._pg.discard()
            raise StateError(f"digest receipts not mirrored: {exc}") from exc

    def load(self, since: datetime) -> list[DigestReceipt]:
        """The digests posted since ``since``, as the mirror knows them."""
        import psycopg

        try:
            conn = self._pg.get()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_SET_TENANT, [self.tenant])
                cur.execute(_OPEN_SINCE, [self.tenant, since])
                return [_decode(row[0]) for row in cur.fetchall()]
        except psycopg.Error as exc:
            self._pg.discard()
            raise StateError(f"digest receipts not read from the mirror: {exc}") from exc

    def close(self) -> None:
        self._pg.discard()
