"""How long one group commit of the history journal takes, by batch size (a diagnostic).

    uv run python bench/journal_commit.py [--batches 1,8,32,128,512] [--rounds 40]

Builds real ``JournalSignal`` messages (a fixture through ``sentry.normalise``,
``classify``, ``decide`` and the router's ``plan``), then times, on a fresh DuckDB file,
what the history actor does per commit: ``_rows_for`` + the JSON encode (event loop
side) and ``store.write(append_rows)`` (the worker thread: BEGIN, one INSERT per table,
COMMIT). Prints milliseconds per commit and per signal, and the signals/s one commit
pipeline could sustain at that batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.history import _frame_encoder, _frame_of, _rows_for  # noqa: E402
from actors.router import plan  # noqa: E402
from eyetok.clock import SystemClock  # noqa: E402
from eyetok.config import FileConfig, settings_from  # noqa: E402
from eyetok.incidents import apply, decide  # noqa: E402
from eyetok.messages import IncidentChanged, JournalSignal  # noqa: E402
from eyetok.severity import classify  # noqa: E402
from eyetok.sources import sentry  # noqa: E402
from state.history.journal import append_rows  # noqa: E402
from state.history.store import HistoryStore  # noqa: E402
from state.history.wal import Journal  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "sentry" / "event_alert_h12.json"


def _messages(count: int, start: int) -> list[JournalSignal]:
    settings = settings_from(FileConfig(), {"SLACK_BOT_TOKEN": "x", "SENTRY_CLIENT_SECRET": "s"})
    template = json.loads(FIXTURE.read_text(encoding="utf-8"))
    clock = SystemClock()
    open_incidents: dict = {}
    out: list[JournalSignal] = []
    for i in range(start, start + count):
        template["data"]["event"]["issue_id"] = str(9_000_000_000 + i)
        body = json.dumps(template, indent=2).encode()
        signal = sentry.normalise(
            body,
            "event_alert",
            tenant="operator",
            signal_id=f"sig_{i:020d}",
            received_at=clock.now(),
            recognisers=settings.recognisers,
        )
        routing = classify(signal, window=settings.tenants["operator"].policy.business_hours)
        action, incident = decide(open_incidents, signal, routing)
        apply(open_incidents, action, incident)
        change = IncidentChanged(signal=signal, routing=routing, action=action, incident=incident)
        out.append(
            JournalSignal(
                signal=signal,
                routing=routing,
                action=action,
                incident=incident,
                deliveries=plan(change, settings),
            )
        )
    return out


async def _run(batches: list[int], rounds: int, path: Path) -> list[dict[str, float]]:
    store = HistoryStore(path / "history.duckdb")
    journal = Journal(path / "journal")
    clock = SystemClock()
    seq = 0
    results = []
    start = 0
    for size in batches:
        prep_ms: list[float] = []
        write_ms: list[float] = []
        fsync_ms: list[float] = []
        for _ in range(rounds):
            batch = _messages(size, start)
            start += size
            t0 = time.perf_counter()
            now = clock.now()
            rows = []
            for message in batch:
                seq += 1
                rows.extend(_rows_for(message, now, seq))
            t1 = time.perf_counter()
            # what a group commit costs now: one msgpack frame, appended and fsynced
            frame = _frame_encoder.encode(_frame_of(rows))
            await trio.to_thread.run_sync(journal.append, frame)
            t2 = time.perf_counter()
            # what it cost before the journal (and what materialisation costs now)
            await store.write(lambda con, rows=rows: append_rows(con, rows))
            t3 = time.perf_counter()
            prep_ms.append((t1 - t0) * 1000)
            fsync_ms.append((t2 - t1) * 1000)
            write_ms.append((t3 - t2) * 1000)
        prep, write = statistics.median(prep_ms), statistics.median(write_ms)
        fsync = statistics.median(fsync_ms)
        results.append(
            {
                "batch": size,
                "rows_per_signal": len(rows) / size,
                "prep_ms": prep,
                "journal_ms": fsync,
                "journal_signals_per_s": size / ((prep + fsync) / 1000),
                "write_ms": write,
                "write_p90_ms": sorted(write_ms)[int(0.9 * (len(write_ms) - 1))],
                "per_signal_ms": (prep + write) / size,
                "signals_per_s": size / ((prep + write) / 1000),
            }
        )
    journal.close()
    store.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batches", default="1,8,32,128,512")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="eyetok-journal-") as tmp:
        results = trio.run(_run, batches, args.rounds, Path(tmp))
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"history group commit, fresh data dir, {args.rounds} commits per size")
    print("  journal = one fsynced frame (the 202 waits for it, now)")
    print("  duckdb  = a DuckDB transaction (the 202 waited for it before; now batched behind)")
    print(
        f"{'batch':>6}{'prep ms':>9}{'journal ms':>12}{'journal sig/s':>15}"
        f"{'duckdb ms':>11}{'duckdb sig/s':>14}"
    )
    for r in results:
        print(
            f"{r['batch']:>6}{r['prep_ms']:>9.2f}{r['journal_ms']:>12.2f}"
            f"{r['journal_signals_per_s']:>15.0f}{r['write_ms']:>11.2f}{r['signals_per_s']:>14.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
