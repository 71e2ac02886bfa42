"""How Slack posts travel: slack-sdk's ``WebClient`` builds every request (method URL,
JSON body, token, user agent) and reads every answer (``SlackResponse``, ``SlackApiError``
for ``ok: false``), but sends through one pooled, kept-alive ``httpx.Client`` instead of
opening a new connection (against real Slack, a new TLS handshake) per call with
``urllib``.

The choice: slack-sdk's ``AsyncWebClient`` needs aiohttp on asyncio, which EyeTok (trio)
does not run, and the sink's calls already run in worker threads; so the one method of
``WebClient`` that performs the HTTP exchange is replaced, and everything slack-sdk does
around it (its request building, its response parsing, its error types) stays. The pool
holds as many connections as the sink has worker threads, each kept alive between posts.

Failures keep the types the sink classifies (``actors/sinks/slack/deliver.py``): a
connection never made is a ``URLError`` around ``ConnectionRefusedError`` (the post did
not land), a timeout is a ``TimeoutError`` and a broken exchange a ``ConnectionError``
(either may have landed), an HTTP status outside 2xx is ``urllib``'s ``HTTPError`` as
slack-sdk expects it.
"""

from __future__ import annotations

import io
import urllib.error
from http.client import HTTPMessage
from typing import Any
from urllib.request import Request

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError

KEEPALIVE_S = 30.0  # an idle connection is closed after this


class PooledWebClient(WebClient):
    """A ``WebClient`` whose calls share ``pool_size`` kept-alive connections. Thread-safe
    as far as the pool goes (``httpx.Client``); close it with :meth:`close`."""

    def __init__(self, *, token: str, base_url: str, timeout: Any, pool_size: int) -> None:
        super().__init__(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=pool_size,
                max_keepalive_connections=pool_size,
                keepalive_expiry=KEEPALIVE_S,
            ),
            verify=self.ssl if self.ssl is not None else True,
            proxy=self.proxy or None,  # WebClient read it from the environment if unset
            trust_env=False,
            follow_redirects=True,  # as urllib does
        )

    def close(self) -> None:
        self._http.close()

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        if not url.lower().startswith(("http://", "https://")):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        headers = {k: v for k, v in req.header_items() if k.lower() != "content-length"}
        body = req.data if isinstance(req.data, bytes) else None
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.ConnectError as exc:  # never connected: nothing was sent
            raise urllib.error.URLError(ConnectionRefusedError(str(exc))) from exc
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"no answer within {self.timeout}s ({exc!r})") from exc
        except httpx.TransportError as exc:
            raise ConnectionError(f"the exchange broke off ({exc!r})") from exc
        message = _headers(response)
        if not 200 <= response.status_code < 300:
            raise urllib.error.HTTPError(
                url,
                response.status_code,
                response.reason_phrase,
                message,
                io.BytesIO(response.content),
            )
        if message.get_content_type() == "application/gzip":
            return {"status": response.status_code, "headers": message, "body": response.content}
        charset = message.get_content_charset() or "utf-8"
        text = response.content.decode(charset)
        return {"status": response.status_code, "headers": message, "body": text}


def _headers(response: httpx.Response) -> HTTPMessage:
    """The answer's headers as ``urllib`` hands them to slack-sdk."""
    message = HTTPMessage()
    for name, value in response.headers.multi_items():
        message[name] = value
    return message
