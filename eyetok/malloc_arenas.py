"""How the daemon's two allocators hand memory back: glibc's malloc arenas, and the
jemalloc that DuckDB links into its own library for its buffers.

How many glibc malloc arenas the daemon's threads share:
glibc gives each thread that allocates under contention an arena of its own (up to eight
per core), and memory freed into one arena is not reused by another: with trio's worker
threads (DuckDB commits, Slack posts, DNS) a burst leaves several partly empty arenas
behind. Two arenas measured 5-15 MB lower peak RSS through the 5,000-webhook burst
(`python bench/ingest.py --daemon-env MALLOC_ARENA_MAX=2`, issue 20). The operator's own
``MALLOC_ARENA_MAX`` wins; elsewhere than glibc nothing is changed.

When DuckDB's jemalloc gives freed pages back: DuckDB configures it to keep them for a
second (``dirty_decay_ms:1000,muzzy_decay_ms:1000``), and with no background thread they
are only purged while DuckDB keeps allocating, so a burst's row groups, WAL buffers and
checkpoint scratch stayed resident: about 10 MB of the daemon's peak RSS through the
5,000-webhook burst (``--daemon-env DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0``,
issue 20). And it keeps one arena, not one per core pair: every DuckDB call the daemon
makes goes through one connection, one call at a time (state/history/store.py), from
whichever of trio's worker threads runs it, and each thread was handed an arena of its own
to fill: 2.1-3.8 MB lower peak through the same burst, three interleaved pairs
(``--daemon-env DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0,narenas:1``), CPU per
request within the runs' spread. jemalloc reads ``DUCKDB_JE_MALLOC_CONF`` once, when
``duckdb`` is imported; the operator's own value wins."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping, MutableMapping

from eyetok import log

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Past this a freed top of the heap goes back to the system, and a block this large or
# larger is mapped on its own (and unmapped when freed). glibc starts at 128 KiB too but
# raises both, up to 32 MB, each time a mapped block is freed: after the first large
# buffers of a burst, their successors come from the heap and stay resident.
THRESHOLD = 128 * 1024
_THRESHOLD_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

DUCKDB_ALLOCATOR_ENV = "DUCKDB_JE_MALLOC_CONF"
# Freed pages go back to the system at once (MADV_DONTNEED), not after a decay period;
# one arena for all threads.
DUCKDB_ALLOCATOR = "dirty_decay_ms:0,muzzy_decay_ms:0,narenas:1"


def cap_malloc_arenas(env: Mapping[str, str] | None = None) -> int | None:
    """Cap the arenas at :data:`ARENAS` before the daemon starts its threads. The cap now
    in force, or None when the environment already sets one or this is not glibc."""
    if "MALLOC_ARENA_MAX" in (os.environ if env is None else env):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not mallopt(_M_ARENA_MAX, ARENAS):
        return None
    log.get("daemon").info(
        "malloc_arenas_capped", arenas=ARENAS, why="worker threads share them: lower peak RSS"
    )
    return ARENAS


def fix_malloc_thresholds(env: Mapping[str, str] | None = None) -> int | None:
    """Hold glibc's trim and mmap thresholds at :data:`THRESHOLD` (set, they no longer
    rise). The threshold now in force, or None when the environment already sets either
    or this is not glibc."""
    if any(name in (os.environ if env is None else env) for name in _THRESHOLD_ENV):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return None
    if not (mallopt(_M_TRIM_THRESHOLD, THRESHOLD) and mallopt(_M_MMAP_THRESHOLD, THRESHOLD)):
        return None
    log.get("daemon").info(
        "malloc_thresholds_fixed",
        bytes=THRESHOLD,
        why="large buffers are mapped and freed tops trimmed: lower peak RSS",
    )
    return THRESHOLD


def return_duckdb_free_pages(env: MutableMapping[str, str] | None = None) -> str | None:
    """Set :data:`DUCKDB_ALLOCATOR` for DuckDB's jemalloc; call it before ``duckdb`` is
    imported. The setting now in force, or None when the environment already sets one or
    DuckDB was imported first (then jemalloc has read its settings already)."""
    target = os.environ if env is None else env
    if DUCKDB_ALLOCATOR_ENV in target:
        return None
    if "_duckdb" in sys.modules:
        log.get("daemon").warning(
            "duckdb_allocator_unchanged",
            reason="duckdb was imported before the daemon set its allocator: freed pages "
            "stay resident for DuckDB's decay period",
        )
        return None
    target[DUCKDB_ALLOCATOR_ENV] = DUCKDB_ALLOCATOR
    return DUCKDB_ALLOCATOR


def log_duckdb_allocator(setting: str) -> None:
    """Say that :func:`return_duckdb_free_pages` set DuckDB's allocator; logged once the
    start-up checks have passed, so a start-up that fails stays one ``startup_failed``
    line."""
    log.get("daemon").info(
        "duckdb_allocator_set",
        setting=setting,
        why="DuckDB's freed buffers go back to the system at once: lower peak RSS",
    )
