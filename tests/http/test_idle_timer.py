"""The keep-alive idle timer: hypercorn's contract (restart runs the action afresh, stop
cancels it), and a real hypercorn server on a free port closing an idle keep-alive
connection at ``idle_timeout_s``, on trio's mock clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.trio import serve, tcp_server
from hypercorn.trio.task_group import TaskGroup

from eyetok.config import HttpOptions
from eyetok.http.idle_timer import IdleTimer
from eyetok.http.server import server_config

IDLE_S = 30.0


class Action:
    """An idle action that waits ``IDLE_S`` and says what became of each run."""

    def __init__(self) -> None:
        self.runs: list[str] = []

    async def __call__(self) -> None:
        run = len(self.runs)
        self.runs.append("started")
        try:
            await trio.sleep(IDLE_S)
        except trio.Cancelled:
            self.runs[run] = "cancelled"
            raise
        self.runs[run] = "timed out"


async def test_restart_runs_the_action_afresh_and_stop_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    action, timer = Action(), IdleTimer()
    async with TaskGroup() as group:
        await timer.restart(group, action)
        await trio.sleep(IDLE_S / 2)
        await timer.restart(group, action)  # the first run is cancelled, a second starts
        await trio.sleep(IDLE_S / 2)
        assert action.runs == ["cancelled", "started"]
        await timer.stop()
    assert action.runs == ["cancelled", "cancelled"]
    assert trio.current_time() == pytest.approx(IDLE_S)


async def test_a_stop_before_the_task_first_runs_still_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    action, timer = Action(), IdleTimer()
    async with TaskGroup() as group:
        await timer.restart(group, action)
        await timer.stop()  # no checkpoint between: the task has not run yet
    assert action.runs == ["cancelled"]
    assert trio.current_time() == 0


async def test_an_action_left_alone_runs_to_its_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    action, timer = Action(), IdleTimer()
    async with TaskGroup() as group:
        await timer.restart(group, action)
    assert action.runs == ["timed out"]
    assert trio.current_time() == pytest.approx(IDLE_S)


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def bind(nursery: trio.Nursery) -> AsyncIterator[str]:
    options = HttpOptions(idle_timeout_s=IDLE_S, read_timeout_s=IDLE_S * 4)
    config = server_config(options, bind="127.0.0.1:0", graceful_timeout_s=1)
    stop = trio.Event()
    [url] = await nursery.start(
        lambda task_status: serve(_ok, config, shutdown_trigger=stop.wait, task_status=task_status)
    )
    yield url.removeprefix("http://")
    stop.set()


async def _answer(stream: trio.SocketStream) -> bytes:
    await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"ok"):
        chunk = await stream.receive_some(4096)
        assert chunk, f"closed before the answer: {got!r}"
        got += chunk
    return got


async def test_hypercorn_closes_an_idle_keep_alive_connection_at_the_idle_timeout(
    mock_clock: trio.testing.MockClock, bind: str
) -> None:
    assert tcp_server.TrioSingleTask is IdleTimer  # installed by server_config
    host, port = bind.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    for _ in range(3):  # each answer restarts the timer: 29 s idle thrice, still open
        assert (await _answer(stream)).startswith(b"HTTP/1.1 200")
        await trio.testing.wait_all_tasks_blocked()  # the server has restarted its timer
        mock_clock.jump(IDLE_S - 1)
    mock_clock.jump(2)
    assert await stream.receive_some(4096) == b""  # closed by the server at 30 s idle
    await stream.aclose()
