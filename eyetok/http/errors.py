"""Every answer is JSON, every failure one log line.

Quart answers an unknown path, a wrong method or an oversized body with an HTML page, and
an exception in a route with an HTML 500 and a multi-line traceback. Two error handlers
replace that:

- :func:`http_error`: any werkzeug ``HTTPException`` (404, 405, 413, ...) becomes
  ``{"error": ...}`` with the same status and headers (``Allow`` on a 405);
- :func:`unexpected_error`: the last resort for an exception no route expected. It logs
  one ``request_failed`` line at error level with the traceback in its ``exception``
  field and answers ``{"error": ...}`` 500. It catches ``Exception`` because it stands
  at the boundary where the alternative is an HTML page; ``trio.Cancelled`` is not an
  ``Exception`` and passes.

:func:`answer_failure` does the same for a raw ASGI app (the hooks, through
``eyetok/http/front.py``), where an unexpected exception would otherwise reach hypercorn,
which answers an empty 500.
"""

from __future__ import annotations

import json

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from eyetok import log
from eyetok.http.asgi import Scope, Send, send_json

_log = log.get("http")


def _json(body: object, status: int) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


async def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc, NotFound):
        message = f"no such path: {request.method} {request.path}"
    elif isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    else:
        message = f"{exc.name}: {exc.description}" if exc.description else str(exc.name)
        _log.info(
            "request_refused",
            method=request.method,
            path=request.path,
            status=status,
            reason=message,
        )
    response = _json({"error": message}, status)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    if isinstance(exc, MethodNotAllowed):
        response.headers["allow"] = allowed  # sorted: werkzeug's order is a set's
    return response


async def unexpected_error(exc: Exception) -> Response:
    _log.error(
        "request_failed",
        method=request.method,
        path=request.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return _json({"error": f"internal error ({type(exc).__name__}); logged as request_failed"}, 500)


def add_json_errors(app: QuartTrio) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


async def answer_failure(scope: Scope, send: Send, exc: Exception) -> None:
    """Log ``exc``, which a raw ASGI app (the hooks) did not expect, as one
    ``request_failed`` line and answer it with a JSON 500 (the caller checks that no
    answer has started; after one, hypercorn cuts the connection)."""
    _log.error(
        "request_failed",
        method=scope.get("method"),
        path=scope.get("path"),
        error=type(exc).__name__,
        exc_info=exc,
    )
    await send_json(
        send,
        500,
        {"error": f"internal error ({type(exc).__name__}); logged as request_failed"},
    )
