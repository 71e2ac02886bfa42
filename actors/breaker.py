"""A circuit breaker per destination, on trio's clock.

Closed: attempts flow. After ``threshold`` consecutive retryable failures it opens for a
cooldown (doubling while failures go on, capped); while open the destination's lane
makes no attempts, so a dead endpoint holds no shared worker thread and costs the other
destinations nothing. When the cooldown ends one trial attempt goes out (half-open): a
success closes the breaker, a failure opens it again for longer.
"""

from __future__ import annotations

import trio


class Breaker:
    def __init__(self, *, threshold: int, cooldown_s: float, max_cooldown_s: float) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.failures = 0
        self.open_until: float | None = None
        self._opened = 0

    @property
    def is_open(self) -> bool:
        return self.open_until is not None and trio.current_time() < self.open_until

    async def wait_closed(self) -> None:
        """Sleep out an open period (the next attempt is the half-open trial)."""
        if self.open_until is not None:
            await trio.sleep_until(self.open_until)

    def succeeded(self) -> bool:
        """Record a success; True when this closed an open breaker."""
        was_open = self.open_until is not None
        self.failures = 0
        self.open_until = None
        self._opened = 0
        return was_open

    def failed(self) -> float | None:
        """Record a retryable failure; the cooldown in seconds if this opened the breaker."""
        self.failures += 1
        if self.failures < self.threshold:
            return None
        cooldown = min(self.max_cooldown_s, self.cooldown_s * float(1 << self._opened))
        self._opened += 1
        self.open_until = trio.current_time() + cooldown
        return cooldown
