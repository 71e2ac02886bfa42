"""The front door: ``/hooks/*`` to the raw hot path, every other path to quart-trio
(``/hooks/pagerduty/*`` too: PagerDuty's webhooks are decisions, not signals).

An answer given before the request's body was all read (a refusal: no credentials, too
large, not JSON) says ``Connection: close``: the unread rest of the body must not be
taken for the next request, and a client must not wait on a connection that hypercorn
may no longer read (keep-alive requests after such an answer were seen to hang).

A quart-trio answer's last message is sent shielded from cancellation. quart-trio runs a
request as two tasks, one sending the answer and one waiting for ``http.disconnect``;
hypercorn hands that task the disconnect from inside the last send, the task cancels its
sibling, and the cancellation lands in the middle of hypercorn closing the socket.
Without the shield a ``Connection: close`` or HTTP/1.0 client got its answer and then an
open socket nobody read or closed (one task and one descriptor per client, until the
client left). The hooks run as one task that nothing but the server's own shutdown
cancels, so their answers go out unshielded: a cancel scope per request costs about as
much CPU as decoding the webhook.

A hook's request is one :class:`_HookExchange`: its receive and send, the
``Connection: close`` above and :func:`~eyetok.http.errors.answer_failure` (an
unexpected exception is one ``request_failed`` line and a JSON 500) in one layer
between hypercorn and the hooks, with no closure built per request.
"""

from __future__ import annotations

import trio

from eyetok.http.asgi import ASGIApp, Message, Receive, Scope, Send, header
from eyetok.http.errors import answer_failure

PAGERDUTY_HOOKS = "/hooks/pagerduty/"


class Front:
    def __init__(self, hooks: ASGIApp, app: ASGIApp) -> None:
        self._hooks = hooks
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/hooks/") and not path.startswith(PAGERDUTY_HOOKS):
            await _HookExchange(scope, receive, send).run(self._hooks)
            return
        body_read = not _has_body(scope)

        async def reading() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_read:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self._app(scope, reading, answering)


class _HookExchange:
    """One request to the hooks: whether its body was all read (else the answer says
    ``Connection: close``) and whether its answer has started (else an unexpected
    exception is answered with a JSON 500; after, hypercorn cuts the connection)."""

    __slots__ = ("_receive", "_scope", "_send", "body_read", "started")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self.body_read = not _has_body(scope)
        self.started = False

    async def run(self, hooks: ASGIApp) -> None:
        try:
            await hooks(self._scope, self.receive, self.send)
        except Exception as exc:
            if self.started:
                raise  # hypercorn logs it (one line, eyetok/log.py) and cuts the connection
            await answer_failure(self._scope, self.send, exc)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_read = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if not self.body_read:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
        await self._send(message)


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (HTTP/1.1: Content-Length above 0, or
    Transfer-Encoding)."""
    length = header(scope, b"content-length")
    return header(scope, b"transfer-encoding") is not None or (
        length is not None and length.strip() not in ("", "0")
    )
