"""Issue 20 item 2: a daemon whose configuration uses no vault, Postgres mirror, secrets
key, DKIM key, PagerDuty or webhook sink loads none of their client libraries."""

from __future__ import annotations

import os

from bench.ingest.footprint import OPTIONAL, import_footprint, memory_map


def test_eyetok_run_imports_no_optional_client() -> None:
    found = import_footprint()
    assert found["optional_loaded"] == [], found["optional_loaded"]
    assert found["modules"] > 100
    heaviest = {name.split(".")[0] for name, _parent, _ms in found["heaviest"]}
    assert {"trio", "duckdb"} <= heaviest
    assert not heaviest & set(OPTIONAL)


def test_memory_map_adds_up_to_the_process_rss() -> None:
    held = memory_map(os.getpid())
    with open("/proc/self/status", encoding="utf-8") as f:
        rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    assert held["Python runtime"] > 0
    assert abs(sum(held.values()) - rss_mb) < 0.05 * rss_mb + 2
