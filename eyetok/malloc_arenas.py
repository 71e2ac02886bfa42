"""How many glibc malloc arenas the daemon's threads share.

glibc gives each thread that allocates under contention an arena of its own (up to eight
per core), and memory freed into one arena is not reused by another: with trio's worker
threads (DuckDB commits, Slack posts, DNS) a burst leaves several partly empty arenas
behind. Two arenas measured 5-15 MB lower peak RSS through the 5,000-webhook burst
(`python bench/ingest.py --daemon-env MALLOC_ARENA_MAX=2`, issue 20). The operator's own
``MALLOC_ARENA_MAX`` wins; elsewhere than glibc nothing is changed."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping

from eyetok import log

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


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
