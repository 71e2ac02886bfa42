"""``GET /metrics``: the Prometheus text format (eyetok/metrics.py), optionally behind a
bearer token (``EYETOK_METRICS_TOKEN``)."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from quart import Response, request
from quart_trio import QuartTrio

from eyetok.metrics import METRICS


def add_metrics(app: QuartTrio, daemon: CollectorRegistry | None, token: str | None) -> None:
    extra = (daemon,) if daemon is not None else ()

    @app.get("/metrics")
    async def metrics() -> Response:
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return Response(
                    '{"error": "/metrics wants Authorization: Bearer $EYETOK_METRICS_TOKEN"}',
                    status=401,
                    content_type="application/json",
                )
        return Response(METRICS.exposition(*extra), content_type=CONTENT_TYPE_LATEST)
