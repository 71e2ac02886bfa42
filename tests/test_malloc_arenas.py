"""The daemon caps glibc's malloc arenas unless the operator set MALLOC_ARENA_MAX, and has
DuckDB's jemalloc give freed pages back at once unless the operator set DUCKDB_JE_MALLOC_CONF."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

from eyetok.malloc_arenas import (
    ARENAS,
    DUCKDB_ALLOCATOR,
    DUCKDB_ALLOCATOR_ENV,
    cap_malloc_arenas,
    return_duckdb_free_pages,
)


def test_the_operators_setting_wins() -> None:
    assert cap_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is None


def test_glibc_takes_the_cap() -> None:
    assert ctypes.util.find_library("c") is not None  # these machines run glibc
    assert cap_malloc_arenas({}) == ARENAS == 2


# In a fresh interpreter: set the allocator as `eyetok run` does, import duckdb, and read
# the decay jemalloc took from DuckDB's own library (the option it exports).
_DUCKDB_PROBE = """
import ctypes, os, sys
from eyetok.malloc_arenas import return_duckdb_free_pages
set_to = return_duckdb_free_pages()
import _duckdb
lib = ctypes.CDLL(_duckdb.__file__)
decay = ctypes.c_ssize_t.in_dll(lib, "duckdb_je_opt_dirty_decay_ms").value
muzzy = ctypes.c_ssize_t.in_dll(lib, "duckdb_je_opt_muzzy_decay_ms").value
print(set_to, decay, muzzy)
"""


def _probe(extra_env: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != DUCKDB_ALLOCATOR_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _DUCKDB_PROBE],
        env={**env, **extra_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()[-1].split()  # after the daemon's log line


def test_duckdbs_jemalloc_returns_freed_pages_at_once() -> None:
    assert _probe({}) == [DUCKDB_ALLOCATOR, "0", "0"]


def test_the_operators_duckdb_allocator_setting_wins() -> None:
    setting = "dirty_decay_ms:250,muzzy_decay_ms:500"
    assert _probe({DUCKDB_ALLOCATOR_ENV: setting}) == ["None", "250", "500"]


def test_too_late_once_duckdb_is_imported() -> None:
    import duckdb  # noqa: F401  (jemalloc has read its settings)

    env: dict[str, str] = {}
    assert return_duckdb_free_pages(env) is None
    assert env == {}
