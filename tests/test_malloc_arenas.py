"""The daemon caps glibc's malloc arenas unless the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import ctypes.util

from eyetok.malloc_arenas import ARENAS, cap_malloc_arenas


def test_the_operators_setting_wins() -> None:
    assert cap_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is None


def test_glibc_takes_the_cap() -> None:
    assert ctypes.util.find_library("c") is not None  # these machines run glibc
    assert cap_malloc_arenas({}) == ARENAS == 2
