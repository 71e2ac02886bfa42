"""``eyetok run`` spaces out the young garbage collections (never more often)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from eyetok.gc_threshold import YOUNG_THRESHOLD, space_out_collections


@pytest.fixture
def threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_the_young_threshold_is_raised_and_the_others_kept(threshold: None) -> None:
    gc.set_threshold(700, 11, 12)
    space_out_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)


def test_a_higher_threshold_is_kept(threshold: None) -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 3, 10, 10)
    space_out_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 3, 10, 10)


def test_a_disabled_threshold_stays_disabled(threshold: None) -> None:
    """0 turns automatic collection off (``gc.set_threshold(0)``): left so."""
    gc.set_threshold(0, 10, 10)
    space_out_collections()
    assert gc.get_threshold() == (0, 10, 10)
