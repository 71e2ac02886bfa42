"""Alertmanager itself, measured in the same run: Debian's ``prometheus-alertmanager``
(installed with ``apt-get install -y prometheus-alertmanager`` when it is missing, and
the report says so) on 127.0.0.1 and a random free port, with a temp config (one route to
a receiver with no integrations: nothing is notified), its storage in a temp dir and the
cluster listener off (``--cluster.listen-address=``). It gets the same alerts as EyeTok's
Alertmanager hook, as R ``POST /api/v2/alerts`` bodies of P alerts (what Prometheus
sends it), at the same concurrency from the same load generator. Alertmanager keeps its
alerts in memory (its storage dir holds silences and the notification log only), so its
figure is ingest without durability; EyeTok's 202 follows an fsync.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.batched import log
from bench.batched.bodies import API_ALERTS_PATH, alerts_in, api_alerts
from bench.batched.checks import server_cpu, throughput
from bench.ingest import HOST
from bench.ingest.bodies import Request, retarget
from bench.ingest.load import RunResult, run_raw, summarise
from bench.ingest.processes import Proc, RssSampler, cpu_snapshot

PACKAGE = "prometheus-alertmanager"
BINARIES = ("prometheus-alertmanager", "alertmanager")
CONFIG_YAML = """\
# bench/batched.py: every alert goes to a receiver without integrations (notifies nothing)
route:
  receiver: blackhole
  group_by: [alertname, job]
receivers:
  - name: blackhole
"""


def find_binary() -> tuple[str, str]:
    """Alertmanager's binary, and how it got here ("found" or "installed with apt-get").
    Raises :class:`RuntimeError` when it is missing and cannot be installed."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path, "found"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise RuntimeError(
            f"Alertmanager is not installed and apt-get cannot install it here (not root or "
            f"no apt): run `apt-get install -y {PACKAGE}`, or pass --skip-alertmanager"
        )
    log(f"Alertmanager is not installed: apt-get install -y {PACKAGE}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    path = next((p for n in BINARIES if (p := shutil.which(n))), None)
    if done.returncode != 0 or path is None:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"apt-get install {PACKAGE} failed ({done.returncode}): {tail}")
    return path, "installed with apt-get"


def version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "unknown"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def start(binary: str, workdir: Path, limit_s: float = 30.0) -> tuple[Proc, int]:
    """Alertmanager on 127.0.0.1 and a free port, once ``GET /-/ready`` answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG_YAML, encoding="utf-8")
    port = _free_port()
    out = (workdir / "alertmanager.log").open("wb")
    popen = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--cluster.listen-address=",  # no gossip listener (it would bind 0.0.0.0:9094)
            "--log.level=warn",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    proc = Proc("alertmanager", popen, [out])
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            proc.stop()
            tail = (workdir / "alertmanager.log").read_text(errors="replace")[-600:]
            raise RuntimeError(f"Alertmanager exited ({popen.returncode}) at start: {tail}")
        if _get(port, "/-/ready", 1.0)[0] == 200:
            return proc, port
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"Alertmanager was not ready on port {port} within {limit_s:g} s")


def _accepted_as_202(result: RunResult) -> RunResult:
    """Alertmanager answers 200 where EyeTok answers 202: the same figures follow."""
    result.status = [202 if s == 200 else s for s in result.status]
    return result


def phase_alertmanager(
    args: argparse.Namespace, requests: list[Request], warm: list[Request], workdir: Path
) -> dict[str, Any]:
    """The same alerts as ``requests`` (webhook groups) through Alertmanager's API."""
    binary, how = find_binary()
    figures: dict[str, Any] = {"binary": binary, "how": how, "version": version(binary)}
    posts = [api_alerts(r) for r in requests]
    proc, port = start(binary, workdir)
    sampler = RssSampler(proc.pid).start()
    try:
        if warm:
            run_raw(port, retarget([api_alerts(r) for r in warm], 1, port), args.concurrency, 60.0)
        reqs = retarget(posts, 1, port)
        log(f"alertmanager: {len(reqs)} x POST {API_ALERTS_PATH} at concurrency {args.concurrency}")
        cpu0 = cpu_snapshot(proc.pid)
        result = _accepted_as_202(run_raw(port, reqs, args.concurrency, args.time_limit))
        cpu1 = cpu_snapshot(proc.pid)
        status, body = _get(port, f"{API_ALERTS_PATH}?silenced=false&inhibited=false", 30.0)
        figures["held_active"] = len(json.loads(body)) if status == 200 else None
    finally:
        peak = sampler.stop()
        proc.stop(10.0)
    figures.update(summarise(result))
    sent = sum(alerts_in(r, "alertmanager") for r in requests)
    figures["alerts_accepted"] = sum(
        alerts_in(r, "alertmanager")
        for r, s in zip(requests, result.status, strict=True)
        if s == 202
    )
    throughput(figures, sent)
    cpu = server_cpu(cpu0, cpu1, figures["alerts_accepted"], figures["seconds"])
    cpu.pop("server_main_thread_cpu_us_per_alert")  # Go: no main thread worth naming
    cpu.pop("server_other_threads_cpu_us_per_alert")
    figures.update(cpu)
    figures["peak_rss_mb"] = round(peak / 2**20, 1)
    log(
        f"alertmanager: {figures['alerts_per_s']:,.0f} alerts/s, "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"{figures['server_cpu_us_per_alert']} us CPU per alert"
    )
    return figures
