"""The quart-trio app: everything that is not the ingest hot path."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from quart import Response
from quart_trio import QuartTrio


def create_app(*, readiness: Callable[[], dict[str, Any]]) -> QuartTrio:
    """``readiness()`` answers ``{"ready": bool, ...details}``."""
    app = QuartTrio("eyetok")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        state = readiness()
        response = Response(json.dumps(state), status=200 if state.get("ready") else 503)
        response.headers["content-type"] = "application/json"
        return response

    return app
