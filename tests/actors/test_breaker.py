from __future__ import annotations

import trio
import trio.testing

from actors.breaker import Breaker


async def test_the_breaker_opens_after_the_threshold_and_backs_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = Breaker(threshold=3, cooldown_s=5.0, max_cooldown_s=12.0)
    assert breaker.failed() is None
    assert breaker.failed() is None
    assert breaker.failed() == 5.0
    assert breaker.is_open
    start = trio.current_time()
    await breaker.wait_closed()
    assert trio.current_time() - start == 5.0
    assert not breaker.is_open
    assert breaker.failed() == 10.0  # the half-open trial failed: open for longer
    assert breaker.failed() == 12.0  # capped
    assert breaker.succeeded() is True
    assert breaker.failures == 0
    assert breaker.failed() is None  # closed again: the count starts over
