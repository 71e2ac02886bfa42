"""What the daemon holds in memory: what ``eyetok run`` imports with the bench's
configuration (``python -X importtime``, the RSS once imported, which optional clients were
loaded), and where the daemon's RSS sits at the burst's peak (``/proc/PID/smaps``: the
Python heap and other anonymous memory, DuckDB's library, the other libraries)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.ingest import ROOT
from bench.ingest.processes import clean_env

# Libraries that only some configurations need: loaded by a daemon without PagerDuty,
# email, a vault, a Postgres mirror or webhook sinks, each is a regression (issue 20).
# smtplib and httptools: the email and webhook sinks' transports (the sink registry,
# actors/sinks/__init__.py, imports a kind's client only for a sink of that kind).
OPTIONAL = (
    "boto3",
    "requests",
    "infisical_sdk",
    "psycopg",
    "cryptography",
    "dkim",
    "dns",
    "pydantic",
    "scim2_models",
    "smtplib",
    "httptools",
)
_FIRST_PARTY = ("actors", "eyetok", "state", "schedules", "harness")
_PROBE = (
    "import re, sys\n"
    "import actors.daemon, eyetok.cli\n"
    "rss = re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1]\n"
    "print(rss, len(sys.modules), ' '.join(sorted(sys.modules)))\n"
)
_ROW = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_footprint() -> dict[str, Any]:
    """Import the daemon's entry points in a fresh interpreter with the bench's environment
    (no EYETOK_*, DATABASE_URL or INFISICAL_* that the daemon would not get either)."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("INFISICAL_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rss_kb, n_modules, names = done.stdout.split(" ", 2)
    loaded = set(names.split())
    return {
        "rss_after_import_mb": round(int(rss_kb) / 1024, 1),
        "modules": int(n_modules),
        "optional_loaded": [name for name in OPTIONAL if name in loaded],
        "heaviest": _heaviest(done.stderr, 12),
    }


def _heaviest(importtime: str, limit: int) -> list[tuple[str, str, float]]:
    """(library, the first-party module that imported it, cumulative ms): third-party
    imports made directly by EyeTok's own modules, slowest first."""
    rows: list[tuple[int, int, str]] = []
    for line in importtime.splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((int(m[2]), len(m[3]) // 2, m[4]))
    found: list[tuple[str, str, float]] = []
    for i, (cumulative_us, depth, name) in enumerate(rows):
        if name.split(".")[0] in _FIRST_PARTY:
            continue
        # importtime prints a module after its imports: the parent is the next shallower row
        parent = next((r[2] for r in rows[i + 1 :] if r[1] < depth), "")
        if parent.split(".")[0] in _FIRST_PARTY:
            found.append((name, parent, round(cumulative_us / 1000, 1)))
    found.sort(key=lambda r: -r[2])
    return found[:limit]


def memory_map(pid: int) -> dict[str, float]:
    """The process's RSS by kind of mapping, in MB (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    kinds: dict[str, float] = {}
    kind = "anonymous"
    for line in text.splitlines():
        head = line.split(maxsplit=5)
        if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
            kind = _kind(head[5] if len(head) > 5 else "")
        elif head[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0.0) + int(head[1]) / 1024
    return {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}


def _kind(path: str) -> str:
    if not path or path.startswith("[anon") or path == "[heap]":
        return "anonymous (Python heap, malloc, DuckDB buffers)"
    if "duckdb" in path:
        return "DuckDB library"
    if path.startswith("["):
        return "kernel ([stack], [vdso]...)"
    if "libpython" in path or "/lib-dynload/" in path:
        return "Python runtime"
    return "other libraries and files"


def held_at_stop(log_path: Path) -> dict[str, dict[str, Any]]:
    """What the actors said they held when the daemon stopped (their ``*_held_at_stop``
    log lines): actor -> sizes of its maps."""
    held: dict[str, dict[str, Any]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '_held_at_stop"' not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            actor = str(entry.pop("event")).removesuffix("_held_at_stop")
            held[actor] = {k: v for k, v in entry.items() if isinstance(v, int)}
    return held


def footprint_lines(figures: dict[str, Any]) -> list[str]:
    """The report's lines for :func:`import_footprint` and :func:`memory_map` figures."""
    lines: list[str] = []
    imp = figures.get("imports")
    if imp:
        optional = ", ".join(imp["optional_loaded"]) or "none"
        lines.append(
            f"  imports of `eyetok run` (this configuration): {imp['rss_after_import_mb']} MB "
            f"RSS once imported, {imp['modules']} modules; optional clients loaded: {optional}"
        )
        heaviest = "; ".join(f"{n} {ms:g} ms (by {p})" for n, p, ms in imp["heaviest"])
        lines.append(f"    slowest direct imports: {heaviest}")
    held = figures.get("memory_at_peak")
    if held:
        parts = "; ".join(f"{k} {v:g} MB" for k, v in held.items())
        lines.append(f"  what the daemon held after the HTTP burst: {parts}")
    for actor, sizes in (figures.get("actors_held_at_stop") or {}).items():
        parts = ", ".join(f"{k} {v:,}" for k, v in sizes.items())
        lines.append(f"  the {actor} actor held at stop: {parts}")
    return lines
