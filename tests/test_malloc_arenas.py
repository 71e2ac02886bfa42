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
    THRESHOLD,
    cap_malloc_arenas,
    fix_malloc_thresholds,
    return_duckdb_free_pages,
)


def test_the_operators_setting_wins() -> None:
    assert cap_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is None


def test_glibc_takes_the_cap() -> None:
    assert ctypes.util.find_library("c") is not None  # these machines run glibc
    assert cap_malloc_arenas({}) == ARENAS == 2


def test_the_operators_thresholds_win() -> None:
    assert fix_malloc_thresholds({"MALLOC_MMAP_THRESHOLD_": "65536"}) is None
    assert fix_malloc_thresholds({"MALLOC_TRIM_THRESHOLD_": "65536"}) is None


# In a fresh interpreter: free a 4 MB block (glibc then raises its mmap threshold past
# it), allocate four 256 KiB buffers, and count the blocks malloc has mapped on their own.
_THRESHOLD_PROBE = """
import ctypes, sys
from eyetok.malloc_arenas import fix_malloc_thresholds
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    fix_malloc_thresholds({})
big = bytearray(4 << 20)
del big
buffers = [bytearray(256 << 10) for _ in range(4)]
print(libc.mallinfo2().hblks)
"""


def _mapped_blocks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _THRESHOLD_PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.splitlines()[-1])


def test_large_buffers_stay_mapped_once_the_thresholds_are_held() -> None:
    assert fix_malloc_thresholds({}) == THRESHOLD == 128 * 1024
    # glibc's own rule put the four buffers on the heap; held, each is mapped (and
    # unmapped when freed)
    assert _mapped_blocks("fixed") == _mapped_blocks("default") + 4


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
arenas = ctypes.c_uint.in_dll(lib, "duckdb_je_opt_narenas").value
print(set_to, decay, muzzy, arenas)
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


def test_duckdbs_jemalloc_returns_freed_pages_at_once_and_keeps_one_arena() -> None:
    assert _probe({}) == [DUCKDB_ALLOCATOR, "0", "0", "1"]


def test_the_operators_duckdb_allocator_setting_wins() -> None:
    setting = "dirty_decay_ms:250,muzzy_decay_ms:500,narenas:2"
    assert _probe({DUCKDB_ALLOCATOR_ENV: setting}) == ["None", "250", "500", "2"]


def test_too_late_once_duckdb_is_imported() -> None:
    import duckdb  # noqa: F401  (jemalloc has read its settings)

    env: dict[str, str] = {}
    assert return_duckdb_free_pages(env) is None
    assert env == {}
