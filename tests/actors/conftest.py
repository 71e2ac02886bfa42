"""Fixtures of the actor tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio.testing

from state.history.store import HistoryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    """A fresh DuckDB history, as an actor reads it on start."""
    history = HistoryStore(tmp_path / "history.duckdb")
    yield history
    history.close()


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    """pytest-trio's MockClock, jumping once every task has been idle 0.05 s: the Slack
    calls run in worker threads on real time, so the clock never jumps while one is under
    way (a test may set its own ``autojump_threshold``)."""
    return trio.testing.MockClock(autojump_threshold=0.05)
