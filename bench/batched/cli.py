"""The options and the run: for each source the ceiling, Alertmanager (its source only)
and EyeTok in turn, then the report and the verdicts (exit 1 when an accepted alert is
missing from the journal or the history)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.batched import (
    ROOT,
    SOURCES,
    TARGET_ALERTS_PER_S,
    TARGET_VS_ALERTMANAGER,
    TENANT,
    log,
)
from bench.batched.alertmanager import phase_alertmanager
from bench.batched.bodies import Bodies
from bench.batched.phases import phase_ceiling, phase_eyetok
from bench.batched.report import text_report
from bench.ingest.report import version_of


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/batched.py",
        description="Batched hooks throughput: EyeTok beside a ceiling and Alertmanager.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-r", "--requests", type=int, default=200, help="requests per source")
    p.add_argument("-c", "--concurrency", type=int, default=8, help="connections in flight")
    p.add_argument("-p", "--per-request", type=int, default=100, help="alerts per request")
    p.add_argument("--source", choices=("probe", "alertmanager", "both"), default="both")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default: C)")
    p.add_argument("--skip-ceiling", action="store_true", help="do not measure the ceiling")
    p.add_argument(
        "--skip-alertmanager", action="store_true", help="do not measure Alertmanager itself"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, journal)")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per load phase")
    p.add_argument(
        "--eyetok-root",
        default=str(ROOT),
        help="checkout whose eyetok the daemon runs (another branch's snapshot; same venv)",
    )
    p.add_argument(
        "--journal-timeout", type=float, default=30.0, help="seconds to wait for the journal"
    )
    p.add_argument(
        "--py-spy",
        metavar="OUT",
        default=None,
        help="attach py-spy to EyeTok during the measured requests; collapsed stacks to OUT "
        "(OUT.SOURCE with --source both)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.per_request < 1:
        raise SystemExit("--requests, --concurrency and --per-request must be at least 1")
    if args.per_request * 1_000 > 900_000:
        raise SystemExit("--per-request: bodies would pass EyeTok's 1 MiB limit")
    if args.warmup is None:
        args.warmup = args.concurrency
    import hypercorn
    import trio

    sources = list(SOURCES) if args.source == "both" else [args.source]
    token = secrets.token_urlsafe(24)
    tag = secrets.token_hex(3)
    bodies = Bodies(
        tag=tag, per_request=args.per_request, lookback=2 * args.concurrency, token=token
    )
    workdir = Path(tempfile.mkdtemp(prefix="eyetok-batched-"))
    report: dict[str, Any] = {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "hypercorn": version_of("hypercorn", hypercorn),
            "trio": trio.__version__,
            "psutil": psutil.__version__,
            "requests": args.requests,
            "per_request": args.per_request,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "sources": sources,
            "tenant": TENANT,
            "routes": "none (journalled and recorded only)",
            "eyetok_root": str(Path(args.eyetok_root).resolve()),
            "workdir_kept": str(workdir) if args.keep else None,
        },
        "sources": {},
        "verdicts": {},
    }
    try:
        for source in sources:
            requests = bodies.requests(source, "b", args.requests)
            warm = bodies.requests(source, "w", args.warmup) if args.warmup else []
            sizes = [len(r.body) for r in requests]
            part: dict[str, Any] = {
                "requests": args.requests,
                "per_request": args.per_request,
                "body_bytes_mean": sum(sizes) / len(sizes),
                "body_bytes_max": max(sizes),
            }
            if not args.skip_ceiling:
                part["ceiling"] = phase_ceiling(
                    args, source, requests, warm, workdir / f"ceiling-{source}", token
                )
            if source == "alertmanager" and not args.skip_alertmanager:
                try:
                    part["alertmanager"] = phase_alertmanager(
                        args, requests, warm, workdir / "alertmanager"
                    )
                except RuntimeError as exc:  # not installable or would not start: say so
                    log(f"alertmanager: not measured: {exc}")
                    part["alertmanager_error"] = str(exc)
            part["eyetok"] = phase_eyetok(
                args, source, requests, warm, workdir / f"eyetok-{source}", token
            )
            eye, ceil = part["eyetok"], part.get("ceiling")
            if ceil and ceil.get("alerts_per_s"):
                part["ratio"] = round(eye["alerts_per_s"] / ceil["alerts_per_s"], 3)
            part["target_pass"] = eye["alerts_per_s"] >= TARGET_ALERTS_PER_S
            am = part.get("alertmanager")
            if am and am.get("alerts_per_s"):
                vs = eye["alerts_per_s"] / am["alerts_per_s"]
                part["ratio_vs_alertmanager"] = round(vs, 3)
                part["alertmanager_pass"] = vs >= TARGET_VS_ALERTMANAGER
                report["verdicts"]["vs_alertmanager"] = part["alertmanager_pass"]
            report["verdicts"][source] = part["target_pass"]
            report["sources"][source] = part
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    lost = lost_alerts(report)
    report["verdicts"]["nothing_lost"] = lost == 0
    text = text_report(report)
    if lost:
        text += f"\n\n==> {lost} accepted alerts missing from the journal or the history: FAIL"
    if args.json:
        sys.stderr.write(text + "\n")
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 1 if lost else 0


def lost_alerts(report: dict[str, Any]) -> int:
    """Accepted alerts in neither the journal files (at the look after the burst) nor
    ``signals`` after the stop: a broken 202 promise. Without journal files to look at,
    every accepted alert ``signals`` lacks counts."""
    lost = 0
    for part in report["sources"].values():
        eye = part.get("eyetok") or {}
        j, m = eye.get("journalled") or {}, eye.get("materialised") or {}
        if j.get("journal_files") and "in_neither" in m:
            lost += int(m["in_neither"])
        elif "expected" in m:
            lost += m["expected"] - m["accepted_in_signals"]
        else:
            lost += int(j.get("missing", 0) or 0)
    return lost
