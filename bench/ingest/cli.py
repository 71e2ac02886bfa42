"""The command line: ``uv run python -m bench.ingest`` (or ``python bench/ingest.py``)."""

from __future__ import annotations

import argparse
import contextlib
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

from bench.ingest import BURST_FIXTURES, HOST, durability, log
from bench.ingest.bodies import RequestFactory
from bench.ingest.burst import phase_burst, phase_ceiling, phase_trickle
from bench.ingest.kill import phase_kill
from bench.ingest.peers import SlackWatch, WebhookPeers, start_webhook_peers
from bench.ingest.processes import Proc, start_fake_slack
from bench.ingest.report import judge, text_report, version_of


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "-n", "--requests", type=int, default=None, help="requests per phase (5000; --kill: 2000)"
    )
    p.add_argument("-c", "--concurrency", type=int, default=32, help="connections in flight")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--skip-ceiling", action="store_true", help="do not measure the ceiling")
    p.add_argument("--skip-burst", action="store_true", help="do not run the EyeTok burst")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default: C)")
    p.add_argument(
        "--slack-rate",
        type=float,
        default=1000.0,
        help="burst: Slack msgs/s per channel (0: the default 1/s, no config file)",
    )
    p.add_argument(
        "--sink",
        choices=("slack", "webhook"),
        default="slack",
        help="burst: where the alerts go (webhook: the operator's SEV channels routed only "
        "to a DNS-verified webhook sink received in this process)",
    )
    p.add_argument("--trickle", action="store_true", help="also run the trickle phase")
    p.add_argument(
        "--kill",
        action="store_true",
        help="only the kill -9 phase: SIGKILL EyeTok mid-stream, restart, check nothing is lost",
    )
    p.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="--kill: SIGKILL once this fraction of the N requests was answered 202",
    )
    p.add_argument(
        "--fresh-data-dir",
        action="store_true",
        help="--kill: restart on a NEW, EMPTY data dir with the same Postgres (a dyno)",
    )
    p.add_argument(
        "--durability",
        choices=("disk", "postgres"),
        default=None,
        help="--kill: EYETOK_DURABILITY of the daemon (default: postgres with "
        "--fresh-data-dir, else disk without Postgres)",
    )
    p.add_argument(
        "--skip-durability",
        action="store_true",
        help="do not run the burst again in postgres durability (bench/ingest/durability.py)",
    )
    p.add_argument(
        "--database-url",
        default="",
        help="Postgres for postgres durability (default: a fresh database on "
        "EYETOK_TEST_PG_DSN's server, dropped after)",
    )
    p.add_argument("--trickle-count", type=int, default=40, help="trickle alerts")
    p.add_argument(
        "--trickle-rate",
        type=float,
        default=0.5,
        help="trickle alerts/s per channel (Slack allows 1)",
    )
    p.add_argument(
        "--e2e-timeout", type=float, default=120.0, help="seconds to wait for all Slack posts"
    )
    p.add_argument(
        "--time-limit", type=float, default=300.0, help="seconds a load phase may take at most"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the burst daemon under cProfile (main thread; kept with --keep)",
    )
    p.add_argument(
        "--py-spy",
        metavar="OUT",
        default="",
        help="attach py-spy to the burst daemon during the HTTP burst; collapsed stacks to OUT "
        "(the postgres-mode burst: OUT.postgres)",
    )
    p.add_argument(
        "--task-cpu",
        action="store_true",
        help="run the ceiling and the burst daemon under bench/task_steps.py and print the "
        "event loop's CPU per request task by task (the recorder adds CPU of its own)",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="what-if: run the burst daemon under sys.setswitchinterval(S) (default 0.005)",
    )
    p.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: extra environment for the burst daemon (repeatable)",
    )
    p.add_argument(
        "--daemon-prefix",
        default="",
        help="command prepended to the burst daemon's argv (e.g. a profiler)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.requests is None:
        args.requests = 2000 if args.kill else 5000
    if args.kill:
        args.warmup = 0  # a correctness run: nothing to warm up
        if args.fresh_data_dir and args.durability is None:
            args.durability = "postgres"  # a dyno's default (DYNO is set)
    if args.requests < 1 or args.concurrency < 1:
        raise SystemExit("-n and -c must be at least 1")
    if args.warmup is None:
        args.warmup = args.concurrency
    if args.task_cpu and (args.daemon_prefix or args.profile or args.switch_interval):
        raise SystemExit(
            "--task-cpu runs the daemon under its own recorder: not with "
            "--daemon-prefix, --profile or --switch-interval"
        )
    import hypercorn
    import trio

    secret = secrets.token_hex(16)
    tag = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="eyetok-bench-"))
    factory = RequestFactory(secret, HOST, tag)
    requests = factory.batch("b", args.requests, BURST_FIXTURES, 1)
    sizes = [len(r.body) for r in requests]
    client_desc = (
        "raw HTTP/1.1 keep-alive, one epoll loop in one process (pre-signed requests)"
        if args.client == "raw"
        else "httpx.AsyncClient on trio, one process"
    )
    if args.kill:
        client_desc = (
            "raw HTTP/1.1 keep-alive, one epoll loop in one process (pre-signed requests), "
            "re-sending on connection failure or 503 until 202"
        )
    report: dict[str, Any] = {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "hypercorn": version_of("hypercorn", hypercorn),
            "trio": trio.__version__,
            "requests": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "client": args.client,
            "client_desc": client_desc,
            "sink": args.sink,
            "fixtures": list(BURST_FIXTURES),
            "body_bytes_mean": sum(sizes) / len(sizes),
            "body_bytes_min": min(sizes),
            "body_bytes_max": max(sizes),
            "workdir_kept": str(workdir) if args.keep else None,
        },
        "figures": {},
        "verdicts": {},
    }
    procs: list[Proc] = []
    watch: SlackWatch | None = None
    hook: WebhookPeers | None = None
    stack = contextlib.ExitStack()  # the Postgres database of the durability runs
    try:
        if args.kill:
            slack, slack_url = start_fake_slack(workdir)
            procs.append(slack)
            watch = SlackWatch(slack_url)
            if args.fresh_data_dir or args.durability == "postgres":
                dsn = stack.enter_context(durability.postgres_database(args))
            else:
                dsn = None
            report["kill"] = phase_kill(args, factory, workdir, slack_url, watch, dsn)
            report["kill"]["e2e_limit_s"] = args.e2e_timeout
        if not args.kill and not args.skip_ceiling:
            report["ceiling"] = phase_ceiling(args, factory, requests, workdir)
        if not args.kill and (not args.skip_burst or args.trickle):
            slack, slack_url = start_fake_slack(workdir)
            procs.append(slack)
            watch = SlackWatch(slack_url)
            if not args.skip_burst:
                if args.sink == "webhook":
                    hook = start_webhook_peers()
                report["eyetok"] = phase_burst(
                    args, factory, requests, workdir, slack, slack_url, watch, hook
                )
                if not args.skip_durability:
                    # The same burst again, a 202 waiting for Postgres too (same N, C).
                    again = factory.batch("p", args.requests, BURST_FIXTURES, 1)
                    dsn = stack.enter_context(durability.postgres_database(args))
                    log("eyetok: the same burst in postgres durability")
                    report["eyetok_postgres"] = durability.phase_postgres_burst(
                        args,
                        dsn,
                        lambda a: phase_burst(
                            a, factory, again, workdir / "pg", slack, slack_url, watch, hook
                        ),
                    )
            if args.trickle:
                report["trickle"] = phase_trickle(args, factory, workdir, slack_url, watch)
    finally:
        if watch is not None:
            watch.close()
        if hook is not None:
            hook.stop()
        for proc in reversed(procs):
            proc.stop(5.0)
        stack.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    judge(report)
    text = text_report(report)
    if args.json:
        sys.stderr.write(text + "\n")
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(text + "\n")
    if args.kill:
        v = report["verdicts"]
        return 0 if v["kill_lost"] and v["kill_journal"] and v["kill_complete"] else 1
    return 0
