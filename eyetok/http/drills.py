"""The operator API the drill harness reads and writes (``Authorization: Bearer
$EYETOK_ROOT_TOKEN``). The harness drives alerts only through the hooks; these answer
what happened to them and keep its receipt:

- ``GET  /api/v1/about``: the daemon's version, its tenants (tier, hourly budget, sinks)
  and where operator notices go;
- ``GET  /api/v1/notifications?tenant=T&since=ISO``: outbox rows and their outcome;
- ``GET  /api/v1/audit?tenant=T&event=E&since=ISO``: audit-log lines;
- ``POST /api/v1/explain``: ``{"tenant", "hook": "probe"|"generic", "at", "body"}`` ->
  how the body would be routed at ``at`` (nothing is sent or recorded);
- ``POST /api/v1/drills/receipts``: a drill receipt, journalled into ``drill_receipts``;
- ``GET  /api/v1/drills/receipts?limit=N``: the newest receipts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from eyetok.decoding import decode_json
from eyetok.errors import IngestError, MalformedPayloadError
from eyetok.explain import Explanation, parse_instant
from eyetok.http.bodies import json_body, raw_body, refused_as_json
from eyetok.receipts import Receipt


class DrillDesk(Protocol):
    """What the daemon answers the harness with (implemented in ``actors/drill_desk``)."""

    def about(self) -> dict[str, Any]: ...

    async def notifications(
        self, tenant: str | None, since: datetime | None
    ) -> list[dict[str, Any]]: ...

    async def audit(
        self, tenant: str | None, event: str | None, since: datetime | None
    ) -> list[dict[str, Any]]: ...

    def explain(self, tenant: str, hook: str, body: bytes, at: datetime) -> list[Explanation]: ...

    async def record_receipt(self, receipt: Receipt) -> None: ...

    async def receipts(self, limit: int) -> list[dict[str, Any]]: ...


class _ExplainBody(msgspec.Struct, kw_only=True):
    tenant: str
    hook: str
    at: str
    body: msgspec.Raw  # the hook body, as sent


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def _since() -> datetime | None:
    text = request.args.get("since")
    return parse_instant(text) if text else None


def add_drill_routes(
    app: QuartTrio, desk: DrillDesk, operator_only: Callable[[], Response | None]
) -> None:
    @app.get("/api/v1/about")
    async def about() -> Response:
        return operator_only() or _json(desk.about())

    @app.get("/api/v1/notifications")
    async def notifications() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        try:
            since = _since()
        except MalformedPayloadError as exc:
            return _json({"error": str(exc)}, 400)
        rows = await desk.notifications(request.args.get("tenant"), since)
        return _json({"notifications": rows})

    @app.get("/api/v1/audit")
    async def audit() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        try:
            since = _since()
        except MalformedPayloadError as exc:
            return _json({"error": str(exc)}, 400)
        rows = await desk.audit(request.args.get("tenant"), request.args.get("event"), since)
        return _json({"audit": rows})

    @app.post("/api/v1/explain")
    async def explain() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        try:
            asked = await json_body(_ExplainBody, 'explain takes {"tenant", "hook", "at", "body"}')
            at = parse_instant(asked.at)
            found = desk.explain(asked.tenant, asked.hook, bytes(asked.body), at)
        except IngestError as exc:
            return refused_as_json(exc)
        return _json({"explanations": msgspec.to_builtins(found)})

    @app.post("/api/v1/drills/receipts")
    async def record_receipt() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body = await raw_body("a drill receipt")
        receipt: Receipt = decode_json(body, Receipt, "a drill receipt")
        await desk.record_receipt(receipt)
        return _json({"receipt_id": receipt.receipt_id, "table": "drill_receipts"}, 201)

    @app.get("/api/v1/drills/receipts")
    async def receipts() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        try:
            limit = max(1, min(int(request.args.get("limit", "20")), 500))
        except ValueError:
            return _json({"error": "limit is not a number"}, 400)
        return _json({"receipts": await desk.receipts(limit)})
