"""The operator API of the rotation drill (``eyetok rotate``), root token only:

- ``POST /api/v1/sinks/<id>/rotation`` ``{"sink_type", "requested_by", "token"?}``: add
  version N+1 of the sink's credential and re-run its handshake (409 while another
  rotation is open; 400 when the sink is of another type or the token is not one);
- ``POST /api/v1/sinks/<id>/rotation/rollback`` ``{"requested_by"}``: back to version N.

Every refusal is ``{"error": ...}`` with its status, as everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

import msgspec
from quart import Response
from quart_trio import QuartTrio

from eyetok.http.bodies import json_body
from eyetok.messages import RotationAnswer

SINK_TYPES = ("slack", "webhook", "email", "pagerduty")


class Rotations(Protocol):
    """The rotation actor, as the operator API reaches it."""

    async def rotate(
        self, sink_id: str, sink_type: str, requested_by: str, token: str | None
    ) -> RotationAnswer: ...

    async def roll_back(self, sink_id: str, requested_by: str) -> RotationAnswer: ...


class _RotateBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sink_type: str
    requested_by: str = "operator"
    token: str | None = None


class _RollbackBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    requested_by: str = "operator"


def _json(body: object, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _answer(answer: RotationAnswer) -> Response:
    body = msgspec.to_builtins(answer)
    if answer.status != 200:
        body["error"] = answer.message
    return _json(body, answer.status)


def add_rotation_routes(
    app: QuartTrio, rotations: Rotations, operator_only: Callable[[], Response | None]
) -> None:
    @app.post("/api/v1/sinks/<sink_id>/rotation")
    async def rotate(sink_id: str) -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body: _RotateBody = await json_body(_RotateBody, "a rotation request")
        if body.sink_type not in SINK_TYPES:
            return _json({"error": f"sink_type must be one of {', '.join(SINK_TYPES)}"}, 400)
        if not body.requested_by.strip():
            return _json({"error": "requested_by names who rotates"}, 400)
        return _answer(
            await rotations.rotate(sink_id, body.sink_type, body.requested_by, body.token)
        )

    @app.post("/api/v1/sinks/<sink_id>/rotation/rollback")
    async def roll_back(sink_id: str) -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body: _RollbackBody | None = await json_body(
            _RollbackBody, "a rollback request", optional=True
        )
        by = body.requested_by if body is not None else "operator"
        return _answer(await rotations.roll_back(sink_id, by))
