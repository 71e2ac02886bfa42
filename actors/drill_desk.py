"""The drill desk: what the operator API tells the drill harness, and its receipts.

Reads go through the history store's read path (one connection, one thread at a time)
after asking the history actor to materialise what it has journalled, so the harness
sees every row the daemon has committed. A receipt is journalled by the history actor,
the only writer, like every other row. Explanations are pure (:mod:`eyetok.explain`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import duckdb
import msgspec
import trio

from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.explain import Explanation, explain
from eyetok.messages import DrillReceiptRecorded, FlushHistory, HistoryMessage, Reply
from eyetok.receipts import Receipt
from state.history.store import HistoryStore

FLUSH_TIMEOUT_S = 10.0
MAX_ROWS = 5000

_NOTIFICATION_COLUMNS = (
    "delivery_id",
    "signal_id",
    "tenant",
    "incident_id",
    "sink_id",
    "sink_type",
    "target",
    "action",
    "status",
    "attempts",
    "latency_ms",
    "detail",
    "external_ref",
    "notice",
)
_AUDIT_COLUMNS = ("tenant", "event", "detail", "incident_id", "signal_id")


def daemon_version() -> str:
    try:
        return version("eyetok")
    except PackageNotFoundError:
        return "unknown"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True)
class DrillDesk:
    settings: Settings
    store: HistoryStore
    history: trio.MemorySendChannel[HistoryMessage]
    clock: Clock

    def about(self) -> dict[str, Any]:
        settings = self.settings
        types = settings.sink_types()
        notices = settings.delivery.operator_notices
        cap = settings.budgets.cap_notices
        return {
            "version": daemon_version(),
            "operator_tenant": settings.operator_tenant,
            "operator_notices": f"{notices.sink}:{notices.target}",
            "cap_notices": f"{cap.sink}:{cap.target}",
            "suppression_hold_s": settings.suppression.hold_s,
            "tenants": [
                {
                    "tenant": t.tenant_id,
                    "tier": t.tier,
                    "hourly_budget": t.hourly_budget,
                    "primary_sink": t.primary_sink,
                    "sinks": [
                        {"sink_id": sink_id, "sink_type": types[sink_id]}
                        for sink_id, sink in settings.sinks.items()
                        if sink.tenant == t.tenant_id
                    ],
                }
                for t in settings.tenants.values()
            ],
            "sinks": {sink_id: types[sink_id] for sink_id in settings.sinks},
            "faults": settings.faults.active(),
        }

    async def _flush(self) -> None:
        reply: Reply[bool] = Reply()
        with trio.fail_after(FLUSH_TIMEOUT_S):
            await self.history.send(FlushHistory(reply=reply))
            await reply.wait()

    async def notifications(
        self, tenant: str | None, since: datetime | None
    ) -> list[dict[str, Any]]:
        await self._flush()

        def query(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            # (timestamps as epoch seconds: DuckDB needs pytz to hand out TIMESTAMPTZ values)
            sql = (
                f"SELECT {', '.join(_NOTIFICATION_COLUMNS[:-1])}, "
                "json_extract_string(deliver_json, '$.notice') AS notice, epoch(planned_at), "
                "epoch(finished_at) FROM notifications WHERE (? IS NULL OR tenant = ?) "
                "AND (? IS NULL OR planned_at >= ?) ORDER BY planned_at, delivery_id LIMIT ?"
            )
            return con.execute(sql, [tenant, tenant, since, since, MAX_ROWS]).fetchall()

        out = []
        for row in await self.store.read(query):
            item = dict(zip(_NOTIFICATION_COLUMNS, row[:-2], strict=True))
            item["planned_at"], item["finished_at"] = _iso(row[-2]), _iso(row[-1])
            out.append(item)
        return out

    async def audit(
        self, tenant: str | None, event: str | None, since: datetime | None
    ) -> list[dict[str, Any]]:
        await self._flush()

        def query(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            sql = (
                f"SELECT {', '.join(_AUDIT_COLUMNS)}, epoch(logged_at) FROM audit_log "
                "WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR event = ?) "
                "AND (? IS NULL OR logged_at >= ?) ORDER BY logged_at LIMIT ?"
            )
            return con.execute(
                sql, [tenant, tenant, event, event, since, since, MAX_ROWS]
            ).fetchall()

        out = []
        for row in await self.store.read(query):
            item = dict(zip(_AUDIT_COLUMNS, row[:-1], strict=True))
            item["logged_at"] = _iso(row[-1])
            out.append(item)
        return out

    def explain(self, tenant: str, hook: str, body: bytes, at: datetime) -> list[Explanation]:
        return explain(self.settings, tenant_id=tenant, hook=hook, body=body, at=at)

    async def record_receipt(self, receipt: Receipt) -> None:
        await self.history.send(
            DrillReceiptRecorded(
                receipt_id=receipt.receipt_id,
                scenario=receipt.scenario,
                tenant=receipt.tenant,
                started_at=receipt.started_at,
                finished_at=receipt.finished_at,
                verdict=receipt.verdict,
                failed_steps=tuple(receipt.failed_steps()),
                daemon_version=receipt.daemon_version,
                receipt_json=msgspec.json.encode(receipt).decode(),
                at=self.clock.now(),
            )
        )
        await self._flush()

    async def receipts(self, limit: int) -> list[dict[str, Any]]:
        await self._flush()

        def query(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            sql = (
                "SELECT receipt_id, scenario, verdict, failed_steps, receipt_json "
                "FROM drill_receipts ORDER BY recorded_at DESC LIMIT ?"
            )
            return con.execute(sql, [limit]).fetchall()

        return [
            {
                "receipt_id": r[0],
                "scenario": r[1],
                "verdict": r[2],
                "failed_steps": r[3],
                "receipt": json.loads(r[4]),
            }
            for r in await self.store.read(query)
        ]
