"""The ceiling's and EyeTok's phases: each a fresh process on 127.0.0.1 given the warm-up
and then the measured requests at concurrency C; CPU, RSS and (EyeTok) the journal and
history checks."""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.batched import TENANT, TOKEN_ENV, log
from bench.batched.bodies import alerts_in
from bench.batched.checks import (
    answer_figures,
    materialised,
    server_cpu,
    throughput,
    wait_journalled,
)
from bench.ingest import HOST
from bench.ingest.bodies import Request, retarget
from bench.ingest.load import run_raw, summarise
from bench.ingest.peers import journal_stats
from bench.ingest.processes import (
    Proc,
    RssSampler,
    clean_env,
    cpu_snapshot,
    start_ceiling,
    start_py_spy,
    stop_py_spy,
    wait_ready,
)

CONFIG_YAML = f"""\
# bench/batched.py: one tenant whose batch hooks take a bearer token; no policy, so its
# alerts are journalled and recorded but routed nowhere (ingest + journal is measured).
tenants:
  {TENANT}:
    tier: enterprise
    hook_token_env: {TOKEN_ENV}
"""


@dataclass
class Daemon:
    proc: Proc
    port: int
    data_dir: Path
    ready_s: float


def start_eyetok(workdir: Path, token: str, root: Path) -> Daemon:
    """``root``: the checkout whose ``eyetok`` runs (``-m`` puts it first on sys.path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "eyetok.yaml"
    config_path.write_text(CONFIG_YAML, encoding="utf-8")
    env = clean_env()
    env.update(
        PORT="0",
        EYETOK_DATA_DIR=str(workdir / "data"),
        EYETOK_CONFIG=str(config_path),
        PYTHONUNBUFFERED="1",
    )
    env[TOKEN_ENV] = token
    log_path, err_path = workdir / "eyetok.log", workdir / "eyetok.stderr"
    out, err = log_path.open("wb"), err_path.open("wb")
    t0 = time.perf_counter()
    popen = subprocess.Popen(
        [sys.executable, "-m", "eyetok.cli", "run", "--host", HOST],
        cwd=root,
        env=env,
        stdout=out,
        stderr=err,
    )
    proc = Proc("eyetok", popen, [out, err])
    try:
        port = wait_ready(popen, log_path, err_path, 60.0)
    except Exception:
        proc.stop()
        raise
    return Daemon(proc, port, workdir / "data", time.perf_counter() - t0)


def _spy_path(args: argparse.Namespace, source: str) -> Path:
    """``--py-spy OUT``: OUT itself for one source, OUT.SOURCE when both run."""
    out = Path(args.py_spy)
    return out.with_name(f"{out.name}.{source}") if args.source == "both" else out


# --- phases --------------------------------------------------------------------------------


def phase_ceiling(
    args: argparse.Namespace,
    source: str,
    requests: list[Request],
    warm: list[Request],
    workdir: Path,
    token: str,
) -> dict[str, Any]:
    proc, port = start_ceiling(secrets.token_hex(16), workdir, token=token)
    sampler = RssSampler(proc.pid).start()
    try:
        if warm:
            run_raw(port, retarget(warm, 1, port), args.concurrency, 60.0)
        reqs = retarget(requests, 1, port)
        log(f"ceiling/{source}: {len(reqs)} requests at concurrency {args.concurrency}")
        cpu0 = cpu_snapshot(proc.pid)
        result = run_raw(port, reqs, args.concurrency, args.time_limit)
        cpu1 = cpu_snapshot(proc.pid)
    finally:
        peak = sampler.stop()
        proc.stop(5.0)
    figures = summarise(result)
    answers = answer_figures(result)
    answers.pop("signal_ids")
    figures.update(answers)
    throughput(figures, sum(alerts_in(r, source) for r in requests))
    figures.update(server_cpu(cpu0, cpu1, figures["alerts_accepted"], figures["seconds"]))
    figures["peak_rss_mb"] = round(peak / 2**20, 1)
    log(
        f"ceiling/{source}: {figures['alerts_per_s']:,.0f} alerts/s, "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    return figures


def phase_eyetok(
    args: argparse.Namespace,
    source: str,
    requests: list[Request],
    warm: list[Request],
    workdir: Path,
    token: str,
) -> dict[str, Any]:
    daemon = start_eyetok(workdir, token, Path(args.eyetok_root).resolve())
    sampler = RssSampler(daemon.proc.pid).start()
    figures: dict[str, Any] = {"ready_s": round(daemon.ready_s, 2)}
    ids: list[str] = []
    try:
        time.sleep(0.2)
        figures["rss_ready_mb"] = round(sampler.last / 2**20, 1)
        if warm:
            run_raw(daemon.port, retarget(warm, 1, daemon.port), args.concurrency, 60.0)
        reqs = retarget(requests, 1, daemon.port)
        log(f"eyetok/{source}: {len(reqs)} requests at concurrency {args.concurrency}")
        spy = start_py_spy(daemon.proc.pid, _spy_path(args, source)) if args.py_spy else None
        cpu0 = cpu_snapshot(daemon.proc.pid)
        try:
            result = run_raw(daemon.port, reqs, args.concurrency, args.time_limit)
        finally:
            cpu1 = cpu_snapshot(daemon.proc.pid)
            if spy is not None:
                stop_py_spy(spy)
        figures["peak_rss_burst_mb"] = round(sampler.peak / 2**20, 1)
        figures.update(summarise(result))
        answers = answer_figures(result)
        ids = answers.pop("signal_ids")
        figures.update(answers)
        throughput(figures, sum(alerts_in(r, source) for r in requests))
        figures.update(server_cpu(cpu0, cpu1, figures["alerts_accepted"], figures["seconds"]))
        log(
            f"eyetok/{source}: {figures['alerts_per_s']:,.0f} alerts/s, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
            f"non-202 {figures['non_202'] or 0}"
        )
        last_answer = max((t for t in result.t1 if t > 0.0), default=time.perf_counter())
        figures["journalled"] = wait_journalled(
            daemon.data_dir / "journal", ids, last_answer, args.journal_timeout
        )
    finally:
        t_stop = time.perf_counter()
        code = daemon.proc.stop(40.0)
        figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
        figures["exit_code"] = code
        figures["peak_rss_mb"] = round(sampler.stop() / 2**20, 1)
    db = daemon.data_dir / "history.duckdb"
    journalled = figures.get("journalled") or {}
    figures["materialised"] = materialised(db, ids, journalled.pop("missing_ids", frozenset()))
    journal = journal_stats(db)
    journal.pop("lanes", None)
    figures["journal"] = journal
    return figures
