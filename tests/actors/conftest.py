"""Fixtures of the actor tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state.history.store import HistoryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    """A fresh DuckDB history, as an actor reads it on start."""
    history = HistoryStore(tmp_path / "history.duckdb")
    yield history
    history.close()
