"""``POST /api/v1/oncall/sync`` ``{"requested_by"}`` (root token): one IdP-bound on-call
sync now, answered with the difference it applied (``eyetok oncall sync``); 503 when no
sync is configured, 502 when the IdP or PagerDuty failed it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

import msgspec
from quart import Response
from quart_trio import QuartTrio

from eyetok.http.bodies import json_body
from eyetok.messages import OncallSyncAnswer


class OncallDesk(Protocol):
    async def oncall_sync(self, requested_by: str) -> OncallSyncAnswer: ...


class _SyncBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    requested_by: str = "operator"


def add_oncall_routes(
    app: QuartTrio, desk: OncallDesk, operator_only: Callable[[], Response | None]
) -> None:
    @app.post("/api/v1/oncall/sync")
    async def oncall_sync() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body: _SyncBody | None = await json_body(_SyncBody, "an on-call sync", optional=True)
        answer = await desk.oncall_sync(body.requested_by if body is not None else "operator")
        shown = msgspec.to_builtins(answer)
        if answer.status != 200:
            shown["error"] = answer.message
        return Response(json.dumps(shown), status=answer.status, content_type="application/json")
