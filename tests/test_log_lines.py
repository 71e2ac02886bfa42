"""The log writer under ``eyetok run``: the event loop's lines of one scheduler pass go out
in one write at the pass's end, other threads' lines at once and in order, and nothing is
left behind when the loop stops, cleanly or not."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
import structlog
import trio
import trio.testing

from eyetok import log


class Out(io.StringIO):
    """A stdout that remembers each write (a system call each, on a real one)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def run_with(lines: log.Lines, main: Callable[[], object], **kwargs: object) -> None:
    trio.run(main, instruments=[lines], **kwargs)  # type: ignore[list-item, arg-type]


def test_the_loops_lines_of_one_pass_go_out_in_one_write_at_its_end() -> None:
    out = Out()
    lines = log.Lines(out)

    async def main() -> None:
        lines.msg("one")
        lines.msg("two")
        assert out.writes == []  # still in the pass that rendered them
        await trio.lowlevel.checkpoint()
        assert out.writes == ["one\ntwo\n"]
        lines.msg("three")
        await trio.lowlevel.checkpoint()

    run_with(lines, main)
    assert out.writes == ["one\ntwo\n", "three\n"]


def test_a_line_waits_for_the_tick_not_for_the_clock() -> None:
    """Under a MockClock that never moves, a line is out as soon as the loop would block."""
    out = Out()
    lines = log.Lines(out)
    clock = trio.testing.MockClock()

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def idle() -> None:
                lines.msg("before idling")
                await trio.sleep_forever()

            nursery.start_soon(idle)
            await trio.testing.wait_all_tasks_blocked()
            assert out.getvalue() == "before idling\n"
            assert trio.current_time() == 0
            nursery.cancel_scope.cancel()

    run_with(lines, main, clock=clock)


def test_a_threads_lines_are_written_at_once_after_the_loops_earlier_ones() -> None:
    out = Out()
    lines = log.Lines(out)

    def worker() -> None:
        lines.msg("thread 1")
        lines.msg("thread 2")

    async def main() -> None:
        lines.msg("loop 1")
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()  # inside one task step: the loop's line is still pending
        assert out.getvalue() == "loop 1\nthread 1\nthread 2\n"
        lines.msg("loop 2")
        await trio.lowlevel.checkpoint()

    run_with(lines, main)
    assert out.getvalue().splitlines() == ["loop 1", "thread 1", "thread 2", "loop 2"]


def test_lines_from_the_loop_and_a_worker_thread_all_appear_each_in_its_order() -> None:
    out = Out()
    lines = log.Lines(out)
    n = 200

    def worker() -> None:
        for i in range(n):
            lines.msg(f"thread {i}")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, worker)
            for i in range(n):
                lines.msg(f"loop {i}")
                await trio.lowlevel.checkpoint()

    run_with(lines, main)
    written = out.getvalue().splitlines()
    assert [x for x in written if x.startswith("loop")] == [f"loop {i}" for i in range(n)]
    assert [x for x in written if x.startswith("thread")] == [f"thread {i}" for i in range(n)]
    assert len(written) == 2 * n


def test_the_loops_end_writes_what_is_pending_clean_stop_or_crash() -> None:
    out = Out()
    lines = log.Lines(out)

    async def stops() -> None:
        lines.msg("drain_finished")  # the last line, no checkpoint after it

    run_with(lines, stops)
    assert out.getvalue() == "drain_finished\n"

    async def crashes() -> None:
        lines.msg("about to fail")
        raise RuntimeError("broken on purpose")

    with pytest.raises(RuntimeError):
        run_with(lines, crashes)
    assert out.getvalue() == "drain_finished\nabout to fail\n"
    lines.msg("after the loop")  # eyetok run's own last lines: written as they come
    assert out.getvalue().endswith("about to fail\nafter the loop\n")


def test_a_stop_flushes_the_lines_of_tasks_cancelled_mid_pass() -> None:
    """SIGTERM's path: the daemon cancels its tasks; their last lines still come out."""
    out = Out()
    lines = log.Lines(out)

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def actor(i: int) -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    lines.msg(f"actor_stopping {i}")

            for i in range(3):
                nursery.start_soon(actor, i)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    run_with(lines, main, clock=trio.testing.MockClock())
    assert sorted(out.getvalue().splitlines()) == [f"actor_stopping {i}" for i in range(3)]


class _BrokenOnce(Out):
    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def write(self, text: str) -> int:
        if self.broken:
            self.broken = False
            raise OSError("stdout went away")
        return super().write(text)


def test_after_a_failed_write_the_loops_lines_are_written_as_they_come() -> None:
    """trio drops an instrument that raises: no line may then wait for a tick that never
    comes (nor pile up in memory)."""
    out = _BrokenOnce()
    lines = log.Lines(out)

    async def main() -> None:
        lines.msg("lost with the broken write")
        await trio.lowlevel.checkpoint()
        lines.msg("written at once")
        assert out.getvalue() == "written at once\n"

    logging.getLogger("trio.abc.Instrument").disabled = True  # it reports the removal
    try:
        run_with(lines, main)
    finally:
        logging.getLogger("trio.abc.Instrument").disabled = False
    assert out.getvalue() == "written at once\n"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[log.Lines]:
    """``eyetok run``'s configuration, writing to a test's writer."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines = log.Lines(Out())
    monkeypatch.setattr(log, "LINES", lines)
    log.configure("info")
    try:
        yield lines
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level


def test_eyetok_and_library_lines_share_the_writer_and_its_order(configured: log.Lines) -> None:
    out = configured._out
    assert isinstance(out, Out)

    async def main() -> None:
        log.get("incidents").info("incident_opened", incident_id="inc_1")
        logging.getLogger("hypercorn.error").warning("connection lost")
        log.get("delivery").info("delivery_sent", incident_id="inc_1")
        await trio.lowlevel.checkpoint()

    run_with(configured, main)
    assert len(out.writes) == 1
    rendered = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["actor"], x["event"]) for x in rendered] == [
        ("incidents", "incident_opened"),
        ("hypercorn.error", "connection lost"),
        ("delivery", "delivery_sent"),
    ]


def test_a_long_pass_writes_its_lines_in_bounded_batches() -> None:
    """A pass that never yields (a long synchronous start-up step) keeps back no more than
    ``MAX_PENDING`` lines: that bounds its memory and what a SIGKILL could lose."""
    out = Out()
    lines = log.Lines(out)
    total = 2 * log.MAX_PENDING + 3

    async def main() -> None:
        for i in range(total):
            lines.msg(f"line {i}")
        assert [w.count("\n") for w in out.writes] == [log.MAX_PENDING, log.MAX_PENDING]

    run_with(lines, main)
    assert [w.count("\n") for w in out.writes] == [log.MAX_PENDING, log.MAX_PENDING, 3]
    assert out.getvalue().splitlines() == [f"line {i}" for i in range(total)]
