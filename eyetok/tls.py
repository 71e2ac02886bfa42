"""TLS client contexts: one of each kind per process, made on the first https connection.

A context costs OpenSSL's initialisation and, above all, loading a CA bundle into it:
about 1.8 MB of RSS for the first and 0.8 MB for each further one here, and milliseconds
of CPU (issue 20). Every httpx client made its own at construction, whether or not it ever
spoke https, so a configuration talking only to plain-http peers paid it at start-up
(twice by default: the verification and playbooks actors' clients). Here each kind is
made once, when something first asks for it, and shared; verification is exactly as
strict as the context each site made before:

- :func:`certifi_context`: certifi's bundle, host names checked, HTTP/1.1 offered (ALPN).
  The webhook sink's transport; httpx's own default when no ``SSL_CERT_*`` variable is
  set (httpcore offers HTTP/1.1 on it at each connection, as it did on its own).
- :func:`httpx_context`: what ``httpx.create_ssl_context()`` gives a client with
  ``trust_env``: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else :func:`certifi_context`.
- :func:`system_context`: ``ssl.create_default_context()``, the system's store (SMTP's
  STARTTLS and the Slack Web API's connections, as before).

:class:`OnDemandClient` is an ``httpx.AsyncClient`` made on its first use, with
:func:`httpx_context`: an actor that keeps a client for its life no longer makes one
(and a context) before it has a request to send.

A shared context is only read after it is made (ALPN is the one setting httpcore writes,
at each connection, always to HTTP/1.1 here: no client asks for HTTP/2).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import certifi
import httpx

_lock = threading.Lock()
_made: dict[tuple[str, str], ssl.SSLContext] = {}


def _once(key: tuple[str, str], make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    with _lock:
        context = _made.get(key)
        if context is None:
            context = _made[key] = make()
        return context


def _certifi() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


def certifi_context() -> ssl.SSLContext:
    """Chain and host name verified against certifi's bundle; offers only HTTP/1.1."""
    return _once(("certifi", ""), _certifi)


def httpx_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The context httpx makes for ``verify=True`` (``httpx.create_ssl_context``)."""
    if trust_env and (cafile := os.environ.get("SSL_CERT_FILE")):
        return _once(("cafile", cafile), lambda: ssl.create_default_context(cafile=cafile))
    if trust_env and (capath := os.environ.get("SSL_CERT_DIR")):
        return _once(("capath", capath), lambda: ssl.create_default_context(capath=capath))
    return certifi_context()


def system_context() -> ssl.SSLContext:
    """``ssl.create_default_context()``: the system's CA store, host names checked."""
    return _once(("system", ""), ssl.create_default_context)


def contexts_made() -> int:
    """How many contexts this process has made here (for tests and the bench)."""
    with _lock:
        return len(_made)


class OnDemandClient:
    """An ``httpx.AsyncClient(**kwargs)`` made by the first call, with
    :func:`httpx_context` unless a ``transport`` is given (httpx makes none then);
    ``async with`` closes it if it was made."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._client: httpx.AsyncClient | None = None

    @property
    def made(self) -> bool:
        return self._client is not None

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None:
            kwargs = dict(self._kwargs)
            if kwargs.get("transport") is None:
                kwargs["verify"] = httpx_context(trust_env=kwargs.get("trust_env", True))
            self._client = httpx.AsyncClient(**kwargs)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> OnDemandClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
