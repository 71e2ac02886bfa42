"""Heroku log drain benchmark: what a drain's lines cost EyeTok, one run.

    uv run python bench/heroku_drain.py                  # parser + eyetok run, defaults
    uv run python bench/heroku_drain.py --bodies 40 --lines 2000
    uv run python bench/heroku_drain.py --json           # one JSON object on stdout

Phases (each bounded in count; only 127.0.0.1; the subprocess is stopped in a
``finally``):

1. parser: the framing (``eyetok.sources.logplex``) and the recognition
   (``eyetok.sources.heroku_logs``) over ``--bodies`` bodies of ``--lines`` drain lines
   each (ordinary router and app lines, one H12 in a hundred), in this process: log lines
   parsed per second and CPU milliseconds per thousand lines (process time).
2. daemon: ``eyetok run`` (fresh data dir, no sink verified, so nothing is delivered)
   gets the same bodies over HTTP, one at a time, as Heroku's Logplex sends them
   (``application/logplex-1``, basic auth, the Logplex headers): lines/s end to end, the
   answer's p50/p99, and the daemon's own CPU (psutil, user + system) per thousand lines;
   every answer must be 202 with every frame read.

A Heroku app at a few hundred lines a second costs EyeTok the CPU per thousand lines times
that rate / 1000: the report prints that share of one core at 300 lines/s.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eyetok.sources import heroku_logs, logplex  # noqa: E402
from tests.e2e.daemon import DaemonProcess  # noqa: E402
from tests.sources import heroku_lines as lines  # noqa: E402

PASSWORD = "bench-drain-password"
CONFIG = """
tenants:
  operator:
    tier: operator
    heroku_drain: {user: drain, password_env: EYETOK_DRAIN_PASSWORD}
"""
AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
APP_RATE = 300  # lines/s of "a Heroku app at a few hundred lines a second"


def parse_phase(bodies: list[bytes]) -> dict[str, float]:
    counter = itertools.count()
    total = signals = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for body in bodies:
        framed = logplex.frames(body)
        assert not framed.bad
        total += len(framed.messages)
        signals += len(
            heroku_logs.normalise(
                (m for _, m in framed.messages),
                tenant="operator",
                app="bench",
                codes=heroku_logs.DEFAULT_CODES,
                received_at=AT,
                new_id=lambda: f"sig_{next(counter)}",
            )
        )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "lines": total,
        "signals": signals,
        "lines_per_s": total / wall,
        "cpu_ms_per_1000_lines": cpu * 1000 / (total / 1000),
    }


def daemon_phase(bodies: list[bytes], per_body: int) -> dict[str, float]:
    basic = base64.b64encode(f"drain:{PASSWORD}".encode()).decode()
    headers = {
        "content-type": "application/logplex-1",
        "authorization": f"Basic {basic}",
        "logplex-msg-count": str(per_body),
        "logplex-drain-token": lines.TOKEN,
        "user-agent": "Logplex/v72",
    }
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "eyetok.yaml"
        config.write_text(CONFIG)
        env = {"EYETOK_CONFIG": str(config), "EYETOK_DRAIN_PASSWORD": PASSWORD}
        daemon = DaemonProcess(Path(tmp) / "data", env).start()
        try:
            proc = psutil.Process(daemon.pid)
            latencies: list[float] = []
            with httpx.Client(base_url=daemon.url, timeout=30.0) as client:
                client.post("/hooks/heroku-logs/operator", content=bodies[0], headers=headers)
                cpu0 = sum(proc.cpu_times()[:2])
                wall0 = time.perf_counter()
                for i, body in enumerate(bodies):
                    headers["logplex-frame-id"] = f"{i:032X}"
                    sent = time.perf_counter()
                    answer = client.post(
                        "/hooks/heroku-logs/operator", content=body, headers=headers
                    )
                    latencies.append(time.perf_counter() - sent)
                    assert answer.status_code == 202, answer.text
                    assert answer.json()["frames"] == per_body
                wall = time.perf_counter() - wall0
                cpu = sum(proc.cpu_times()[:2]) - cpu0
        finally:
            daemon.terminate()
    total = per_body * len(bodies)
    latencies.sort()
    return {
        "lines": total,
        "lines_per_s": total / wall,
        "cpu_ms_per_1000_lines": cpu * 1000 / (total / 1000),
        "answer_p50_ms": statistics.median(latencies) * 1000,
        "answer_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=20, help="bodies per phase (max 500)")
    parser.add_argument("--lines", type=int, default=5000, help="lines per body (max 5000)")
    parser.add_argument("--skip-daemon", action="store_true", help="the parser phase only")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    count, per_body = min(args.bodies, 500), min(args.lines, 5000)
    bodies = [lines.body(*lines.mixed(per_body)) for _ in range(count)]
    result: dict[str, object] = {
        "bodies": count,
        "lines_per_body": per_body,
        "body_bytes": len(bodies[0]),
        "parser": parse_phase(bodies),
    }
    if not args.skip_daemon:
        result["daemon"] = daemon_phase(bodies, per_body)
    for phase in ("parser", "daemon"):
        figures = result.get(phase)
        if isinstance(figures, dict):
            share = figures["cpu_ms_per_1000_lines"] * APP_RATE / 1000 / 1000
            figures["core_share_at_300_lines_per_s"] = share
    if args.json:
        print(json.dumps(result))
        return
    print(f"{count} bodies x {per_body} lines ({result['body_bytes']} bytes each)")
    for phase in ("parser", "daemon"):
        figures = result.get(phase)
        if not isinstance(figures, dict):
            continue
        print(
            f"{phase:7s}: {figures['lines_per_s']:>12,.0f} lines/s, "
            f"{figures['cpu_ms_per_1000_lines']:.2f} ms CPU per 1000 lines, "
            f"{figures['core_share_at_300_lines_per_s']:.2%} of a core at {APP_RATE} lines/s"
            + (
                f", answer p50 {figures['answer_p50_ms']:.1f} ms "
                f"p99 {figures['answer_p99_ms']:.1f} ms"
                if "answer_p50_ms" in figures
                else ""
            )
        )


if __name__ == "__main__":
    main()
