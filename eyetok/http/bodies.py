"""Request bodies on the quart-trio app: capped by path, read only when a route asks
(after it has authenticated the caller), and decoded by the guarded decoder.

Quart buffers a body in the background while the route runs, up to the request's
``max_content_length``; a body declared larger is refused before a byte is kept, and a
chunked one is cut off as it passes the cap. So each path's cap is what it needs:
:data:`API_BODY_MAX` for the API, more only where the sender's payload is bigger
(Slack's events, a drill receipt, an explained hook body). Every refusal is an
:class:`~eyetok.errors.IngestError` answered as ``{"error": ...}`` JSON with its status
(400, 413, 415) and logged as one line by :func:`refused_as_json`.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from quart_trio.wrappers import TrioRequest
from werkzeug.exceptions import RequestEntityTooLarge

from eyetok import log
from eyetok.decoding import check_content_type, decode_json, decode_value
from eyetok.errors import IngestError, PayloadTooLargeError

API_BODY_MAX = 64 * 1024
"""Every API body fits: a sink, a tenant's routes, a token label, a note."""
LARGE_BODY_MAX = 1024 * 1024
"""Slack's events (a message may carry 40,000 characters), drill receipts, and the hook
body that ``/api/v1/explain`` wraps (a hook takes 1 MiB)."""
_log = log.get("http")
_LARGE_PATHS = (
    "/slack/events",
    "/slack/actions",  # an interaction carries the message it was pressed on
    "/slack/interactions",
    "/api/v1/drills/receipts",
    "/api/v1/explain",
)


def body_limit(path: str) -> int:
    """The most a body sent to ``path`` may hold, in bytes."""
    return LARGE_BODY_MAX if path.rstrip("/") in _LARGE_PATHS else API_BODY_MAX


class CappedRequest(TrioRequest):
    """A request whose body is capped by :func:`body_limit` of its path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        path = kwargs["path"] if "path" in kwargs else args[2]
        kwargs["max_content_length"] = body_limit(str(path))
        super().__init__(*args, **kwargs)


def cap_bodies(app: QuartTrio) -> None:
    """Cap every body ``app`` reads (see :func:`body_limit`) and answer every refused
    body as JSON."""
    app.request_class = CappedRequest
    app.config["MAX_CONTENT_LENGTH"] = API_BODY_MAX

    @app.errorhandler(IngestError)
    async def refused(exc: IngestError) -> Response:
        return refused_as_json(exc)

    @app.errorhandler(RequestEntityTooLarge)
    async def too_large(exc: RequestEntityTooLarge) -> Response:
        limit = body_limit(request.path) // 1024
        return refused_as_json(PayloadTooLargeError(f"the body is over the {limit} KiB limit"))


def refused_as_json(exc: IngestError, **extra: str) -> Response:
    """``{"error", **extra}`` with the error's status, and one log line saying why."""
    _log.warning(
        "request_refused",
        method=request.method,
        path=request.path,
        status=exc.status,
        reason=str(exc),
    )
    return _json({"error": str(exc), **extra}, exc.status)


async def raw_body(what: str) -> bytes:
    """The request's body, once it is all in; raises :class:`IngestError` (413, 415)."""
    check_content_type(request.headers.get("content-type"), what)
    try:
        data = await request.get_data(as_text=False)
    except RequestEntityTooLarge as exc:
        limit = body_limit(request.path) // 1024
        raise PayloadTooLargeError(f"{what}: the body is over the {limit} KiB limit") from exc
    return data if isinstance(data, bytes) else data.encode()


async def json_body(shape: Any, what: str, *, optional: bool = False) -> Any:
    """The body decoded as ``shape`` (None for an empty body when ``optional``)."""
    data = await raw_body(what)
    if optional and not data.strip():
        return None
    return decode_json(data, shape, what)


async def json_value(what: str) -> object:
    """The body as plain JSON values, nested at most a few dozen levels."""
    return decode_value(await raw_body(what), what)


def _json(body: object, status: int) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response
