"""JSON answers and one log line for errors: the quart app and the raw hooks behind the
real front door and hypercorn, in-process on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import trio
from hypercorn.trio import serve
from structlog.testing import capture_logs

from eyetok.config import HttpOptions
from eyetok.http.app import create_app
from eyetok.http.asgi import ASGIApp, Receive, Scope, Send
from eyetok.http.front import Front
from eyetok.http.server import server_config


class ReadinessBroke(Exception):
    pass


def broken_readiness() -> dict[str, Any]:
    raise ReadinessBroke("the health board is gone")


async def broken_hooks(scope: Scope, receive: Receive, send: Send) -> None:
    raise ZeroDivisionError("a hook divided by zero")


@pytest.fixture
async def client(nursery: trio.Nursery) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(readiness=broken_readiness)
    front = Front(broken_hooks, cast(ASGIApp, app))
    config = server_config(HttpOptions(), bind="127.0.0.1:0", graceful_timeout_s=1)
    stop = trio.Event()
    [bind] = await nursery.start(
        lambda task_status: serve(
            front,  # type: ignore[arg-type]
            config,
            shutdown_trigger=stop.wait,
            task_status=task_status,
        )
    )
    async with httpx.AsyncClient(base_url=bind) as c:
        yield c
    stop.set()


async def test_an_unexpected_exception_in_a_route_is_a_json_500_and_one_log_line(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        answer = await client.get("/readyz")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "internal error (ReadinessBroke); logged as request_failed"}
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["event"] == "request_failed"
    assert (line["method"], line["path"], line["error"]) == ("GET", "/readyz", "ReadinessBroke")
    assert isinstance(line["exc_info"], ReadinessBroke)


async def test_an_unexpected_exception_in_a_hook_is_a_json_500_and_one_log_line(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        answer = await client.post("/hooks/probe/acme", content=b"{}")
    assert answer.status_code == 500
    assert answer.json()["error"].startswith("internal error (ZeroDivisionError)")
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert (line["event"], line["path"]) == ("request_failed", "/hooks/probe/acme")


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/no/such/path", 404, "no such path: GET /no/such/path"),
        (
            "POST",
            "/healthz",
            405,
            "POST is not allowed on /healthz (allowed: GET, HEAD, OPTIONS)",  # sorted
        ),
    ],
)
async def test_quart_s_own_refusals_are_json(
    client: httpx.AsyncClient, method: str, path: str, status: int, error: str
) -> None:
    answer = await client.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": error}
    if status == 405:
        assert answer.headers["allow"] == "GET, HEAD, OPTIONS"


def test_library_log_records_and_their_tracebacks_are_one_json_line_each() -> None:
    """``log.configure`` routes the standard library's logging (hypercorn's error log,
    quart's app logger) through the same JSON renderer; checked in a fresh interpreter
    because it configures the process."""
    program = (
        "import logging\n"
        "from eyetok import log\n"
        "log.configure('info')\n"
        "logging.getLogger('httpx').info('below warning: not shown')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('hypercorn.error').exception('Error in ASGI Framework')\n"
        "logging.getLogger('quart.app').error('Exception on request GET /x')\n"
        "log.get('daemon').info('eyetok_ready', port=1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert done.stderr == ""
    parsed = [json.loads(line) for line in lines]
    assert [(p["actor"], p["event"], p["level"]) for p in parsed] == [
        ("hypercorn.error", "Error in ASGI Framework", "error"),
        ("quart.app", "Exception on request GET /x", "error"),
        ("daemon", "eyetok_ready", "info"),
    ]
    assert "ZeroDivisionError: division by zero" in parsed[0]["exception"]
    assert all("timestamp" in p for p in parsed)
