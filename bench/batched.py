"""Batched hooks throughput: probe verdicts and Alertmanager payloads, EyeTok beside a ceiling.

    uv run python bench/batched.py                      # 200 requests x 100 alerts, C=8, both
    uv run python bench/batched.py --source probe -r 500
    uv run python bench/batched.py --json > result.json # one JSON object on stdout

Design section 9's target: batched hooks (probe verdicts, Alertmanager payloads) accept
>= 20,000 alerts/s with the journal on, measured beside a ceiling in the same run. For
each source (``--source probe|alertmanager|both``):

1. ceiling: ``bench/ceiling_app.py`` (bare ASGI on hypercorn's trio worker: read the body,
   check the bearer token, msgspec-decode the JSON, answer 202 with one entry per alert,
   no journal) gets the source's R requests of P alerts at concurrency C;
2. EyeTok: ``python -m eyetok.cli run`` on a fresh data dir, PORT 0, with one tenant
   ``bench`` whose batch hooks take a bearer token (``hook_token_env``) and which has no
   policy (no routes: every alert is journalled and recorded, nothing is delivered, so
   the figure is ingest + journal), gets the same R requests.

Reported per source: alerts/s accepted (alerts in 202 answers / time from the first
request's first byte to the last answer), requests/s, HTTP p50/p99/max per request,
non-202 answers, peak RSS (daemon and descendants, psutil every 50 ms), CPU per alert,
and after the burst how long until every accepted alert is in the journal: the bench
reads the daemon's journal files (``<data>/journal/journal-*.wal``) and looks for every
signal id the 202 answers named (EyeTok answers 202 only after the journal's fsync, so
all should be there at the first look); after SIGTERM it opens ``history.duckdb``
read-only and checks they were all materialised into ``signals``, with the group
commits the journal shows.

Bodies: probe requests are JSON arrays of P verdicts on distinct servers (each failing
one opens its own incident; 85% failing: down/timeout/degraded over five error kinds,
five registries and their ASNs; 15% ``ok``, resolving a server that failed 2C requests
earlier, or a fresh server's when there is none). Alertmanager requests are one alert
group of P alerts as ``webhook_config`` sends it (version 4, groupKey, truncatedAlerts,
status, receiver, groupLabels, commonLabels, commonAnnotations, externalURL, alerts[]
with status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint), each
alert its own instance and fingerprint; 80% firing (severity warning 60%, critical 20%,
info 20%), 20% resolved (an alert of 2C requests earlier, or a fresh one). Compact JSON,
as Go's encoder and most probes write it.

Only 127.0.0.1. Every load loop is bounded in count and in time (``--time-limit``), the
journal wait by ``--journal-timeout``; every subprocess is stopped in a ``finally``
(SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import HOST  # noqa: E402
from bench.ingest.bodies import Request, retarget  # noqa: E402
from bench.ingest.load import RunResult, run_raw, summarise  # noqa: E402
from bench.ingest.peers import journal_stats  # noqa: E402
from bench.ingest.processes import (  # noqa: E402
    Proc,
    RssSampler,
    clean_env,
    cpu_snapshot,
    start_ceiling,
    wait_ready,
)
from bench.ingest.report import fmt, version_of  # noqa: E402

TENANT = "bench"
TOKEN_ENV = "BENCH_HOOK_TOKEN"
TARGET_ALERTS_PER_S = 20_000.0
SOURCES = ("probe", "alertmanager")
SOURCE_TITLES = {"probe": "probe verdicts", "alertmanager": "Alertmanager payloads"}
_SIGNAL_ID = re.compile(rb"sig_[0-9a-f]{20}")
_encode = msgspec.json.Encoder().encode

CONFIG_YAML = f"""\
# bench/batched.py: one tenant whose batch hooks take a bearer token; no policy, so its
# alerts are journalled and recorded but routed nowhere (ingest + journal is measured).
tenants:
  {TENANT}:
    tier: enterprise
    hook_token_env: {TOKEN_ENV}
"""


def log(message: str) -> None:
    sys.stderr.write(f"[batched {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- bodies --------------------------------------------------------------------------------

REGISTRIES = (  # (registry, ASN, a host it serves from)
    ("npm", 13335, "registry.npmjs.org"),
    ("pypi", 54113, "files.pythonhosted.org"),
    ("crates", 16509, "index.crates.io"),
    ("maven", 15169, "repo.maven.apache.org"),
    ("rubygems", 54113, "rubygems.org"),
)
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2")
ERROR_KINDS = ("tls_handshake", "dns_nxdomain", "connect_timeout", "slow_first_byte", "http_5xx")
FAILING_VERDICTS = ("down", "timeout", "degraded", "down")
PROBE_OK_SHARE = 0.15

AM_GROUPS = (  # (alertname, job, summary template, description template)
    ("KubePodCrashLooping", "kube-state-metrics", "Pod {i} is crash looping",
     "Pod {i} restarted 6 times in the last 10 minutes."),
    ("NodeFilesystemAlmostFull", "node-exporter", "{i}: filesystem / is 91% full",
     "Filesystem / on {i} has 9% space left and is filling up."),
    ("APIHighErrorRate", "raptor-api", "raptor-api {i}: 5xx rate 6.2%",
     "5xx responses are 6.2% of requests on {i} for the last 5 minutes."),
    ("TargetDown", "prometheus", "{i} is down",
     "Prometheus could not scrape {i} for 3 minutes."),
)  # fmt: skip
AM_FIRING_SEVERITIES = ("warning", "critical", "warning", "info", "warning")
AM_RESOLVED_SHARE = 0.20
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _fingerprint(labels: dict[str, str]) -> str:
    """16 hex digits over the sorted labels, as Alertmanager's fingerprint looks."""
    canonical = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


class Bodies:
    """The requests of one run: bodies shared by the ceiling and EyeTok, distinct servers
    and instances per request (``tag`` keeps two runs' apart, ``phase`` warm-up from burst)."""

    def __init__(self, *, tag: str, per_request: int, lookback: int, token: str) -> None:
        self.tag = tag
        self.per = per_request
        self.lookback = lookback
        self.token = token
        self.now = datetime.now(UTC)

    def probe(self, phase: str, count: int) -> list[list[dict[str, Any]]]:
        n_ok = round(self.per * PROBE_OK_SHARE)
        batches: list[list[dict[str, Any]]] = []
        failing_of: list[list[dict[str, Any]]] = []
        for r in range(count):
            failing: list[dict[str, Any]] = []
            for i in range(self.per - n_ok):
                registry, asn, _ = REGISTRIES[(r + i) % len(REGISTRIES)]
                failing.append(
                    {
                        "server": f"mirror-{phase}{r:05d}-{i:03d}.{registry}.{self.tag}.example",
                        "verdict": FAILING_VERDICTS[i % len(FAILING_VERDICTS)],
                        "error_kind": ERROR_KINDS[(i // 2) % len(ERROR_KINDS)],
                        "asn": asn if i % 3 else f"AS{asn}",
                        "registry": registry,
                        "region": REGIONS[i % len(REGIONS)],
                        "observed_at": _rfc3339(self.now + timedelta(milliseconds=r * 10 + i)),
                    }
                )
            earlier = failing_of[r - self.lookback] if r >= self.lookback else []
            oks: list[dict[str, Any]] = []
            for k in range(n_ok):
                if k < len(earlier):  # the server that failed earlier is fine again
                    v = earlier[k]
                    server, kind, asn, registry = (
                        v["server"], v["error_kind"], v["asn"], v["registry"],
                    )  # fmt: skip
                else:  # a fresh server's ok verdict: resolves nothing (audit only)
                    registry, asn, _ = REGISTRIES[k % len(REGISTRIES)]
                    server = f"mirror-{phase}{r:05d}-ok{k:03d}.{registry}.{self.tag}.example"
                    kind = ERROR_KINDS[k % len(ERROR_KINDS)]
                oks.append(
                    {
                        "server": server,
                        "verdict": "ok",
                        "error_kind": kind,
                        "asn": asn,
                        "registry": registry,
                        "region": REGIONS[k % len(REGIONS)],
                        "observed_at": _rfc3339(self.now + timedelta(milliseconds=r * 10 + 5)),
                    }
                )
            failing_of.append(failing)
            # the ok verdicts spread through the array, as a probe round reports them
            step = max(1, len(failing) // max(n_ok, 1))
            merged: list[dict[str, Any]] = []
            for j, v in enumerate(failing):
                merged.append(v)
                if j % step == step - 1 and oks:
                    merged.append(oks.pop())
            batches.append(merged + oks)
        return batches

    def alertmanager(self, phase: str, count: int) -> list[dict[str, Any]]:
        n_resolved = round(self.per * AM_RESOLVED_SHARE)
        payloads: list[dict[str, Any]] = []
        firing_of: list[list[dict[str, Any]]] = []
        for r in range(count):
            alertname, job, summary, description = AM_GROUPS[r % len(AM_GROUPS)]
            starts = self.now - timedelta(minutes=5) + timedelta(milliseconds=r)
            firing: list[dict[str, Any]] = []
            for i in range(self.per - n_resolved):
                instance = f"{job}-{phase}{r:05d}-{i:03d}.{self.tag}.example:9100"
                labels = {
                    "alertname": alertname,
                    "env": "production",
                    "instance": instance,
                    "job": job,
                    "severity": AM_FIRING_SEVERITIES[i % len(AM_FIRING_SEVERITIES)],
                }
                firing.append(
                    {
                        "status": "firing",
                        "labels": labels,
                        "annotations": {
                            "summary": summary.format(i=instance),
                            "description": description.format(i=instance),
                            "runbook_url": f"https://runbooks.example.com/{alertname}",
                        },
                        "startsAt": _rfc3339(starts),
                        "endsAt": GO_ZERO_TIME,
                        "generatorURL": "http://prometheus.example:9090/graph?g0.expr="
                        f"{alertname}&g0.tab=1",
                        "fingerprint": _fingerprint(labels),
                    }
                )
            earlier = firing_of[r - self.lookback] if r >= self.lookback else []
            resolved: list[dict[str, Any]] = []
            for k in range(n_resolved):
                if k < len(earlier):  # an alert that fired earlier has cleared
                    alert = json.loads(json.dumps(earlier[k]))
                else:  # a fresh alert's resolve: nothing to resolve (audit only)
                    labels = {
                        "alertname": alertname,
                        "env": "production",
                        "instance": f"{job}-{phase}{r:05d}-r{k:03d}.{self.tag}.example:9100",
                        "job": job,
                        "severity": "warning",
                    }
                    alert = {
                        "labels": labels,
                        "annotations": {"summary": summary.format(i=labels["instance"])},
                        "startsAt": _rfc3339(starts),
                        "generatorURL": "http://prometheus.example:9090/graph",
                        "fingerprint": _fingerprint(labels),
                    }
                alert["status"] = "resolved"
                alert["endsAt"] = _rfc3339(self.now + timedelta(milliseconds=r))
                resolved.append(alert)
            firing_of.append(firing)
            payloads.append(
                {
                    "version": "4",
                    "groupKey": f'{{}}:{{alertname="{alertname}", job="{job}"}}',
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "eyetok",
                    "groupLabels": {"alertname": alertname, "job": job},
                    "commonLabels": {"alertname": alertname, "env": "production", "job": job},
                    "commonAnnotations": {
                        "runbook_url": f"https://runbooks.example.com/{alertname}"
                    },
                    "externalURL": "http://alertmanager.example:9093",
                    "alerts": firing + resolved,
                }
            )
        return payloads

    def requests(self, source: str, phase: str, count: int) -> list[Request]:
        """``count`` pre-serialised requests for port 1 (``retarget`` them)."""
        docs: list[Any] = (
            self.probe(phase, count) if source == "probe" else self.alertmanager(phase, count)
        )
        out = []
        for r, doc in enumerate(docs):
            body = _encode(doc)
            head = (
                f"POST /hooks/{source}/{TENANT} HTTP/1.1\r\nHost: {HOST}:1\r\n"
                "Content-Type: application/json\r\n"
                f"Authorization: Bearer {self.token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            key = f"{phase}{r:05d}"
            out.append(Request(key, key, body, head.encode("latin-1") + body, {}))
        return out


def alerts_in(request: Request, source: str) -> int:
    doc = json.loads(request.body)
    return len(doc) if source == "probe" else len(doc["alerts"])


# --- answers -------------------------------------------------------------------------------


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
    """Look (every 50 ms, at most ``limit_s``) until every accepted id is in the journal."""
    wanted = set(ids)
    looks = 0
    deadline = time.perf_counter() + limit_s
    missing = len(wanted)
    while True:
        looks += 1
        t_look = time.perf_counter()
        found = journal_ids(journal_dir)
        if found is None:
            return {"journal_files": False, "looks": looks, "expected": len(wanted)}
        missing = len(wanted - found)
        if missing == 0 or time.perf_counter() >= deadline:
            break
        time.sleep(0.05)
    return {
        "journal_files": True,
        "expected": len(wanted),
        "missing": missing,
        "looks": looks,
        # when the look that found the last of them started, after the last answer
        "after_last_answer_ms": round((t_look - last_answer) * 1000.0, 1),
        "scan_ms": round((time.perf_counter() - t_look) * 1000.0, 1),
    }


def materialised(db_path: Path, ids: list[str]) -> dict[str, Any]:
    """After the daemon stopped: how many accepted ids are rows of ``signals``, and how
    many deliveries the history planned (none expected: the tenant has no routes)."""
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
        "expected": len(ids),
        "deliveries": deliveries[0] if deliveries else None,
    }


# --- processes -----------------------------------------------------------------------------


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
        cpu0 = cpu_snapshot(daemon.proc.pid)
        result = run_raw(daemon.port, reqs, args.concurrency, args.time_limit)
        cpu1 = cpu_snapshot(daemon.proc.pid)
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
    figures["materialised"] = materialised(db, ids)
    journal = journal_stats(db)
    journal.pop("lanes", None)
    figures["journal"] = journal
    return figures


# --- report --------------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _non202(fig: dict[str, Any]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in fig.get("non_202", {}).items()) or "0"


def source_lines(source: str, part: dict[str, Any]) -> list[str]:
    c, e = part.get("ceiling") or {}, part.get("eyetok") or {}
    ratio, passed = part.get("ratio"), part.get("target_pass")
    lines = [
        "",
        f"{SOURCE_TITLES[source]}: {part['requests']} requests of {part['per_request']} alerts, "
        f"bodies {part['body_bytes_mean']:,.0f} B mean; POST /hooks/{source}/{TENANT}",
        f"{'':30}{'ceiling':>12}{'EyeTok':>12}{'ratio':>8}   target",
    ]

    def row(label: str, cv: Any, ev: Any, rv: str = "", target: str = "") -> None:
        lines.append(f"{label:30}{fmt(cv):>12}{fmt(ev):>12}{rv:>8}   {target}")

    row(
        "alerts/s accepted",
        c.get("alerts_per_s"),
        e.get("alerts_per_s"),
        f"{ratio:.2f}" if ratio is not None else "-",
        f">= {TARGET_ALERTS_PER_S:,.0f}/s  {_verdict(passed)}",
    )
    row("alerts accepted / sent", _acc(c), _acc(e))
    row("requests/s", c.get("requests_per_s"), e.get("requests_per_s"))
    row("HTTP p50 per request (ms)", c.get("p50_ms"), e.get("p50_ms"))
    row("HTTP p99 per request (ms)", c.get("p99_ms"), e.get("p99_ms"))
    row("HTTP max per request (ms)", c.get("max_ms"), e.get("max_ms"))
    row("non-202 answers", _non202(c) if c else None, _non202(e) if e else None)
    row("peak RSS (MB)", c.get("peak_rss_mb"), e.get("peak_rss_mb"))
    row("server CPU/alert (us)", c.get("server_cpu_us_per_alert"), e.get("server_cpu_us_per_alert"))
    row("server CPU (cores busy)", c.get("server_cpu_cores"), e.get("server_cpu_cores"))
    row(
        "generator CPU/request (us)",
        c.get("client_cpu_us_per_request"),
        e.get("client_cpu_us_per_request"),
    )
    if not e:
        return lines
    if e.get("alerts_accepted_in_503"):
        lines.append(f"  503 answers said {e['alerts_accepted_in_503']} alerts were journalled")
    lines.append(
        f"  EyeTok's answers: actions {e.get('actions')}, channels {e.get('sev_channels')}"
    )
    j = e.get("journalled") or {}
    if j.get("journal_files"):
        lines.append(
            f"  journalled: {j['expected'] - j['missing']}/{j['expected']} accepted alerts in "
            f"the journal files at look {j['looks']}, begun {j['after_last_answer_ms']} ms "
            f"after the last answer (reading them took {j['scan_ms']} ms; a 202 follows the "
            "fsync, so this checks rather than waits)"
        )
    elif j:
        lines.append("  journalled: no journal-*.wal files found under <data>/journal")
    m = e.get("materialised") or {}
    if "expected" in m:
        lines.append(
            f"  after SIGTERM ({e.get('stop_s')} s, exit {e.get('exit_code')}): "
            f"{m['accepted_in_signals']}/{m['expected']} in history.duckdb signals "
            f"({m['signals_rows']} rows with the warm-up), deliveries planned {m['deliveries']}"
        )
    elif m:
        lines.append(f"  history.duckdb: {m.get('error')}")
    g = e.get("journal") or {}
    if "batch_mean" in g:
        lines.append(
            f"  group commits: {g['signals']} signals in {g['signal_commits']}, mean "
            f"{g['batch_mean']} (max {g['batch_max']}), one every {g['interval_p50_ms']} ms "
            f"(p50); receipt -> commit start p50 {g['receipt_to_commit_start_p50_ms']} ms, "
            f"p99 {g['receipt_to_commit_start_p99_ms']} ms"
        )
    lines.append(
        f"  EyeTok RSS {e.get('rss_ready_mb')} MB ready, {e.get('peak_rss_burst_mb')} MB peak "
        f"in the burst; CPU per alert: main thread (trio loop) "
        f"{e.get('server_main_thread_cpu_us_per_alert')} us, other threads "
        f"{e.get('server_other_threads_cpu_us_per_alert')} us; ready in {e.get('ready_s')} s"
    )
    return lines


def _acc(fig: dict[str, Any]) -> str | None:
    if "alerts_accepted" not in fig:
        return None
    return f"{fig['alerts_accepted']}/{fig['alerts_sent']}"


def text_report(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "EyeTok batched hooks benchmark (design section 9: >= 20,000 alerts/s, journal on)",
        f"  {meta['when']}  {meta['cpus']} CPUs  Python {meta['python']}  "
        f"hypercorn {meta['hypercorn']}  trio {meta['trio']}",
        f"  R={meta['requests']} requests x P={meta['per_request']} alerts, "
        f"C={meta['concurrency']}, warm-up {meta['warmup']} requests per server",
        f"  tenant {TENANT!r}: bearer token ({TOKEN_ENV}), no routes (journalled and "
        "recorded, delivered nowhere)",
        "  load generator: raw HTTP/1.1 keep-alive, one epoll loop (bench/ingest/load.py run_raw)",
    ]
    if meta["eyetok_root"] != str(ROOT):
        lines.append(f"  EyeTok run from {meta['eyetok_root']}")
    for source in meta["sources"]:
        lines += source_lines(source, report["sources"][source])
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/batched.py",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-r", "--requests", type=int, default=200, help="requests per source")
    p.add_argument("-c", "--concurrency", type=int, default=8, help="connections in flight")
    p.add_argument("-p", "--per-request", type=int, default=100, help="alerts per request")
    p.add_argument("--source", choices=("probe", "alertmanager", "both"), default="both")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default: C)")
    p.add_argument("--skip-ceiling", action="store_true", help="do not measure the ceiling")
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
            part["eyetok"] = phase_eyetok(
                args, source, requests, warm, workdir / f"eyetok-{source}", token
            )
            eye, ceil = part["eyetok"], part.get("ceiling")
            if ceil and ceil.get("alerts_per_s"):
                part["ratio"] = round(eye["alerts_per_s"] / ceil["alerts_per_s"], 3)
            part["target_pass"] = eye["alerts_per_s"] >= TARGET_ALERTS_PER_S
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
    """Accepted alerts the journal files or ``signals`` lack (a broken 202 promise)."""
    lost = 0
    for part in report["sources"].values():
        eye = part.get("eyetok") or {}
        j, m = eye.get("journalled") or {}, eye.get("materialised") or {}
        lost += int(j.get("missing", 0) or 0)
        if "expected" in m:
            lost += m["expected"] - m["accepted_in_signals"]
    return lost


if __name__ == "__main__":
    sys.exit(main())
