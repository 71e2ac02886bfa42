"""The synthetic outage: a health endpoint the harness serves and breaks, and the
synthetic checks that poll it and report what they see through the probe hook.

:class:`HealthEndpoint` serves ``GET /health/{name}`` on 127.0.0.1: ``200 ok`` until the
drill breaks that name, then ``503`` or no answer at all (a timeout), until it recovers.
:class:`SyntheticCheck` polls one such URL and, on every change, posts a probe verdict
to ``POST /hooks/probe/{tenant}``: a failing verdict (``down: http_503`` or
``timeout: timeout``) opens the incident (rule ``synthetic-check-failure``), the ``ok``
verdict naming the cleared ``error_kind`` resolves it. All checks of a drill share one
ASN and registry, so every tenant failing the same way shares one cluster key
(``{error_kind}|{asn}|{registry}``), as a registry-wide outage would.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import msgspec
import trio

from eyetok.clock import Clock
from harness.front_door import FrontDoor, FrontDoorError, HookCredentials

DRILL_ASN = 64512  # private use (RFC 6996): no real network is named
DRILL_REGISTRY = "drill"
DRILL_REGION = "local"
MAX_REQUEST = 16 * 1024
TIMEOUT_HOLD_S = 120.0  # a "timing out" endpoint holds the connection this long at most


class Health(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "503"  # answers 503 Service Unavailable
    TIMEOUT = "timeout"  # accepts, never answers


class HealthEndpoint:
    """``GET /health/{name}`` on 127.0.0.1 (trio, in the harness's own run)."""

    def __init__(self) -> None:
        self._health: dict[str, Health] = {}
        self.port = 0
        self.requests = 0

    def set(self, name: str, health: Health) -> None:
        self._health[name] = health

    def health(self, name: str) -> Health:
        return self._health.get(name, Health.OK)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/health/{name}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._answer, listeners)
            task_status.started(self.port)

    async def _answer(self, stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
                try:
                    chunk = await stream.receive_some(4096)
                except trio.BrokenResourceError:
                    return
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            path = data.split(b" ", 2)[1].decode("latin-1") if data.count(b" ") >= 2 else "/"
            name = path.removeprefix("/health/").split("?")[0]
            health = self.health(name) if path.startswith("/health/") else None
            if health is Health.TIMEOUT:
                with trio.move_on_after(TIMEOUT_HOLD_S):
                    while await stream.receive_some(4096):  # until the checker gives up
                        pass
                return
            status, body = {
                Health.OK: (b"200 OK", b"ok"),
                Health.UNAVAILABLE: (b"503 Service Unavailable", b"unavailable"),
                None: (b"404 Not Found", b"no such check"),
            }[health]
            head = b"HTTP/1.1 %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
                status,
                len(body),
            )
            try:
                await stream.send_all(head + body)
            except trio.BrokenResourceError:
                return


@dataclass(frozen=True)
class Posted:
    """One verdict the check posted, and the daemon's 202 answer to it."""

    verdict: str
    error_kind: str
    at: datetime
    answer: dict[str, Any]

    @property
    def signals(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.answer.get("signals", [])
        return found


@dataclass
class SyntheticCheck:
    """Polls ``url`` every ``every_s``; posts a verdict for ``tenant`` on every change."""

    name: str
    url: str
    tenant: str
    credentials: HookCredentials
    front: FrontDoor
    clock: Clock
    registry: str = DRILL_REGISTRY
    every_s: float = 0.5
    timeout_s: float = 2.0
    posted: list[Posted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _failing: str | None = None  # the error kind now failing, None when healthy

    @property
    def server(self) -> str:
        return f"{self.name}.synthetic"

    def cluster_key(self, error_kind: str) -> str:
        """The cluster key the daemon gives this check's failing verdicts."""
        return f"{error_kind}|{DRILL_ASN}|{self.registry}".lower()

    def verdict(self, word: str, error_kind: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "server": self.server,
            "verdict": word,
            "asn": DRILL_ASN,
            "registry": self.registry,
            "region": DRILL_REGION,
            "observed_at": self.clock.now().isoformat(),
        }
        if error_kind:
            body["error_kind"] = error_kind
        return body

    async def probe(self, client: httpx.AsyncClient) -> str | None:
        """One look: None when healthy, else the error kind."""
        try:
            response = await client.get(self.url, timeout=self.timeout_s)
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError:
            return "connect_error"
        return None if response.status_code == 200 else f"http_{response.status_code}"

    async def run(self, *, polls: int | None = None) -> None:
        """Poll until cancelled (or ``polls`` times)."""
        limit = math.inf if polls is None else polls
        async with httpx.AsyncClient() as client:
            done = 0
            while done < limit:
                done += 1
                failing = await self.probe(client)
                if failing != self._failing:
                    await self._report(failing)
                await trio.sleep(self.every_s)

    async def _report(self, failing: str | None) -> None:
        if failing is None:
            word, kind = "ok", self._failing or ""
        else:
            word, kind = ("timeout" if failing == "timeout" else "down"), failing
        body = msgspec.json.encode(self.verdict(word, kind))
        now = self.clock.now()
        try:
            answer = await self.front.post_hook("probe", self.tenant, body, self.credentials, now)
        except (FrontDoorError, httpx.HTTPError) as exc:  # refused: tried again next poll
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self._failing = failing
        self.posted.append(Posted(verdict=word, error_kind=kind, at=now, answer=answer))
