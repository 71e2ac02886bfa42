"""The front door: ``/hooks/*`` to the raw hot path, every other path to quart-trio.

An answer's last message is sent shielded from cancellation. quart-trio runs a request as
two tasks, one sending the answer and one waiting for ``http.disconnect``; hypercorn
hands that task the disconnect from inside the last send, the task cancels its sibling,
and the cancellation lands in the middle of hypercorn closing the socket. Without the
shield a ``Connection: close`` or HTTP/1.0 client got its answer and then an open socket
nobody read or closed (one task and one descriptor per client, until the client left).
"""

from __future__ import annotations

import trio

from eyetok.http.asgi import ASGIApp, Message, Receive, Scope, Send
from eyetok.http.errors import json_answers


class Front:
    def __init__(self, hooks: ASGIApp, app: ASGIApp) -> None:
        self._hooks = json_answers(hooks)
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_then_close(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        if scope["path"].startswith("/hooks/"):
            await self._hooks(scope, receive, send_then_close)
        else:
            await self._app(scope, receive, send_then_close)
