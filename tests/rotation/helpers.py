"""Driving the rotation drill through a running daemon's operator API."""

from __future__ import annotations

import httpx
import trio
import trio.lowlevel

from actors.daemon import Daemon
from tests.conftest import FIXTURES, eventually, signed_headers
from tests.verify import ROOT_TOKEN

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
ALERT = FIXTURES / "event_alert_error_new_unhandled_prod.json"


def client(daemon: Daemon) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=15.0)


async def rotate(daemon: Daemon, sink_id: str, kind: str, **body: str) -> httpx.Response:
    async with client(daemon) as c:
        return await c.post(
            f"/api/v1/sinks/{sink_id}/rotation",
            json={"sink_type": kind, "requested_by": "alice", **body},
            headers=AUTH,
        )


async def roll_back(daemon: Daemon, sink_id: str) -> httpx.Response:
    async with client(daemon) as c:
        return await c.post(
            f"/api/v1/sinks/{sink_id}/rotation/rollback",
            json={"requested_by": "bob"},
            headers=AUTH,
        )


async def standing(daemon: Daemon, sink_id: str) -> dict[str, object]:
    async with client(daemon) as c:
        listed = (await c.get("/api/v1/sinks", headers=AUTH)).json()["sinks"]
    found: dict[str, object] = next(s for s in listed if s["sink_id"] == sink_id)
    return found


async def until_status(daemon: Daemon, sink_id: str, status: str) -> None:
    async def check() -> bool:
        return (await standing(daemon, sink_id)).get("status") == status

    await eventually(check)


async def audit(daemon: Daemon, prefix: str) -> list[tuple[str, str]]:
    assert daemon.topology is not None
    assert daemon.store is not None
    await daemon.topology.flush_history()
    rows: list[tuple[str, str]] = await daemon.store.read(
        lambda con: con.execute(
            "SELECT event, detail FROM audit_log WHERE event LIKE ? ORDER BY logged_at",
            [prefix + "%"],
        ).fetchall()
    )
    return rows


async def stored_versions(daemon: Daemon, sink_id: str) -> list[tuple[int, str, bool]]:
    """(version, state, holds a sealed value) of the sink, in version order."""
    assert daemon.store is not None
    rows: list[tuple[int, str, bool]] = await daemon.store.read(
        lambda con: con.execute(
            "SELECT version, state, sealed IS NOT NULL FROM sink_credential_versions "
            "WHERE sink_id = ? ORDER BY version",
            [sink_id],
        ).fetchall()
    )
    return rows


async def alert(daemon: Daemon, *, issue: str) -> None:
    """A new Sentry issue (its own incident) through the front door."""
    body = ALERT.read_bytes().replace(b'"6120458391', f'"{issue}'.encode())
    async with client(daemon) as c:
        answer = await c.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert answer.status_code == 202, answer.text
    await trio.lowlevel.checkpoint()
