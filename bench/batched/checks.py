"""What a run's figures are made of: what the answers say (alerts accepted, signal ids,
actions), throughput and the server's CPU per alert; then the durability checks: every
accepted signal id in EyeTok's journal files (``<data>/journal/journal-*.wal``; a 202
follows the fsync, so all should be there at the first look) and, after SIGTERM, in
``history.duckdb``'s ``signals``."""

from __future__ import annotations

import collections
import json
import re
import time
from pathlib import Path
from typing import Any

from bench.ingest.load import RunResult

_SIGNAL_ID = re.compile(rb"sig_[0-9a-f]{20}")


def answer_figures(result: RunResult) -> dict[str, Any]:
    """What the answers say: alerts accepted (202s, and 503s that accepted part), the
    signal ids, and the actions and channels EyeTok gave them."""
    accepted = 0
    partly = 0
    ids: list[str] = []
    actions: collections.Counter[str] = collections.Counter()
    channels: collections.Counter[str] = collections.Counter()
    unparsed = 0
    for status, body in zip(result.status, result.bodies, strict=True):
        if body is None or status not in (202, 503):
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            unparsed += 1
            continue
        if status == 503:
            partly += int(doc.get("accepted", 0) or 0)
            continue
        accepted += int(doc.get("accepted", 0))
        for s in doc.get("signals", []):
            ids.append(str(s.get("signal_id")))
            actions[str(s.get("action"))] += 1
            channels[str(s.get("sev_channel"))] += 1
    return {
        "alerts_accepted": accepted,
        "alerts_accepted_in_503": partly,
        "signal_ids": ids,
        "actions": dict(sorted(actions.items())),
        "sev_channels": dict(sorted(channels.items())),
        "unparsed_answers": unparsed,
    }


def throughput(figures: dict[str, Any], alerts_sent: int) -> None:
    seconds = max(figures["seconds"], 1e-9)
    figures["alerts_sent"] = alerts_sent
    figures["alerts_per_s"] = round(figures["alerts_accepted"] / seconds, 1)
    figures["requests_per_s"] = round(figures["accepted"] / seconds, 1)


def server_cpu(
    before: dict[str, float], after: dict[str, float], alerts: int, seconds: float
) -> dict[str, float]:
    """The server's CPU over the load run: cores busy, and per accepted alert (all
    threads; the main thread, i.e. the trio loop; the others: journal, DuckDB)."""
    total = after["total"] - before["total"]
    main = after["main"] - before["main"]
    per = 1e6 / max(alerts, 1)
    return {
        "server_cpu_s": round(total, 3),
        "server_cpu_cores": round(total / max(seconds, 1e-9), 2),
        "server_cpu_us_per_alert": round(total * per, 1),
        "server_main_thread_cpu_us_per_alert": round(main * per, 1),
        "server_other_threads_cpu_us_per_alert": round((total - main) * per, 1),
    }


# --- journal -------------------------------------------------------------------------------


def journal_ids(journal_dir: Path) -> set[str] | None:
    """Every signal id the journal files hold (the frames are msgpack: ids are plain bytes)."""
    files = sorted(journal_dir.glob("journal-*.wal")) if journal_dir.is_dir() else []
    if not files:
        return None
    found: set[str] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found.update(m.decode() for m in _SIGNAL_ID.findall(data))
    return found


def wait_journalled(
    journal_dir: Path, ids: list[str], last_answer: float, limit_s: float
) -> dict[str, Any]:
    """Look (every 50 ms, at most ``limit_s``) until every accepted id is in the journal.
    A long run's first frames may have left the journal files already (a checkpoint put
    them in history.duckdb and the segment was removed): once a second of looks finds no
    more, the rest are left to :func:`materialised`, which counts them in history after
    the stop. ``missing_ids`` is for that count, not for the report."""
    wanted = set(ids)
    looks = 0
    deadline = time.perf_counter() + limit_s
    missing: set[str] = wanted
    best, best_at = -1, time.perf_counter()
    while True:
        looks += 1
        t_look = time.perf_counter()
        found = journal_ids(journal_dir)
        if found is None:
            return {"journal_files": False, "looks": looks, "expected": len(wanted)}
        missing = wanted - found
        if len(found) > best:
            best, best_at = len(found), t_look
        if not missing or t_look >= deadline or t_look - best_at >= 1.0:
            break
        time.sleep(0.05)
    return {
        "journal_files": True,
        "expected": len(wanted),
        "missing": len(missing),
        "missing_ids": missing,
        "looks": looks,
        # when the look that found the last of them started, after the last answer
        "after_last_answer_ms": round((t_look - last_answer) * 1000.0, 1),
        "scan_ms": round((time.perf_counter() - t_look) * 1000.0, 1),
    }


def materialised(
    db_path: Path, ids: list[str], not_in_journal: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """After the daemon stopped: how many accepted ids are rows of ``signals``; of
    ``not_in_journal`` (the ids the journal look did not find), how many are (they left
    the journal files at a checkpoint) and how many are in neither (lost); and how many
    deliveries the history planned (none expected: the tenant has no routes). An id still
    in the journal but not yet in ``signals`` is not lost: the next start materialises it."""
    try:
        import duckdb

        con = duckdb.connect(str(db_path), read_only=True)
        try:
            rows = {r[0] for r in con.execute("SELECT signal_id FROM signals").fetchall()}
            deliveries = con.execute("SELECT count(*) FROM deliveries").fetchone()
        finally:
            con.close()
    except Exception as exc:  # a diagnostic: never fail the run over it
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "signals_rows": len(rows),
        "accepted_in_signals": sum(1 for i in ids if i in rows),
        "checkpointed_out_of_journal": sum(1 for i in not_in_journal if i in rows),
        "in_neither": sum(1 for i in not_in_journal if i not in rows),
        "expected": len(ids),
        "deliveries": deliveries[0] if deliveries else None,
    }
