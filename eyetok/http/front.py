"""The front door: ``/hooks/*`` to the raw hot path, every other path to quart-trio."""

from __future__ import annotations

from eyetok.http.asgi import ASGIApp, Receive, Scope, Send


class Front:
    def __init__(self, hooks: ASGIApp, app: ASGIApp) -> None:
        self._hooks = hooks
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/hooks/"):
            await self._hooks(scope, receive, send)
        else:
            await self._app(scope, receive, send)
