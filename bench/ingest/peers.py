"""The receiving side: the fake Slack's posts matched to the requests, the webhook sink
(receiver and DNS peer, verified through the real handshake) and the journal's commits."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import (
    ANY_INCIDENT,
    HOST,
    INCIDENT_IN_POST,
    SEV_CHANNELS,
    WEBHOOK_SECRET_ENV,
    WEBHOOK_SINK,
    WEBHOOK_TARGET,
)
from bench.ingest.bodies import Request, RequestFactory
from bench.ingest.load import RunResult, pct, rounded
from tests.verify import ROOT_TOKEN


class SlackWatch:
    """Reads the fake's posts incrementally (``?since=``); matches them to our requests."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.split("/api/")[0] + "/_fake/posts"
        self.seen = 0
        self.client = httpx.Client(timeout=30.0)

    def fetch_new(self) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = self.client.get(self.url, params={"since": self.seen}).json()
        self.seen += len(posts)
        return posts

    def skip_existing(self) -> None:
        self.fetch_new()

    def wait_for(
        self,
        expected: dict[str, tuple[str, float]],  # incident_id -> (request key, wall at send)
        markers: dict[str, str],  # marker text -> incident_id
        limit_s: float,
    ) -> dict[str, Any]:
        """Wait (bounded) until every expected incident has its top-level post."""
        arrived: dict[str, float] = {}
        channels: dict[str, int] = {}
        matched_by_marker = 0
        other_posts = 0
        deadline = time.perf_counter() + limit_s
        t_start = time.perf_counter()
        while True:
            for post in self.fetch_new():
                text = post.get("text") or ""
                blob = text + json.dumps(post.get("blocks") or [])
                m = INCIDENT_IN_POST.search(blob)
                incident_id = m.group(1) if m and m.group(1) in expected else None
                if incident_id is None:
                    incident_id = next((inc for mk, inc in markers.items() if mk in text), None)
                    matched_by_marker += incident_id is not None
                if incident_id is None or post.get("thread_ts"):
                    other_posts += 1
                    continue
                if incident_id not in arrived:
                    arrived[incident_id] = float(post["received_wall"])
                    channel = str(post.get("channel"))
                    channels[channel] = channels.get(channel, 0) + 1
            if len(arrived) >= len(expected) or time.perf_counter() >= deadline:
                break
            time.sleep(0.25)
        lat = [(arrived[i] - expected[i][1]) * 1000.0 for i in arrived]
        first = min(arrived.values(), default=0.0)
        last = max(arrived.values(), default=0.0)
        return {
            "expected": len(expected),
            "arrived": len(arrived),
            "missing": len(expected) - len(arrived),
            "waited_s": round(time.perf_counter() - t_start, 2),
            "limit_s": limit_s,
            "p50_ms": rounded(pct(lat, 50), 1),
            "p90_ms": rounded(pct(lat, 90), 1),
            "p99_ms": rounded(pct(lat, 99), 1),
            "max_ms": rounded(max(lat, default=None), 1),
            "min_ms": rounded(min(lat, default=None), 1),
            "posts_per_s": round((len(arrived) - 1) / (last - first), 1)
            if len(arrived) > 1 and last > first
            else None,
            "by_channel": channels,
            "matched_by_title_marker": matched_by_marker,
            "other_posts": other_posts,
        }

    def close(self) -> None:
        self.client.close()


def expected_posts(
    requests: list[Request], result: RunResult, factory: RequestFactory
) -> tuple[dict[str, tuple[str, float]], dict[str, str], dict[str, int]]:
    expected: dict[str, tuple[str, float]] = {}
    markers: dict[str, str] = {}
    channels: dict[str, int] = {}
    for i, req in enumerate(requests):
        if result.status[i] != 202 or not result.bodies[i]:
            continue
        answer = json.loads(result.bodies[i] or b"{}")
        incident_id = answer.get("incident_id")
        channel = str(answer.get("sev_channel"))
        channels[channel] = channels.get(channel, 0) + 1
        if incident_id and answer.get("sev_channel") and answer.get("action") == "open":
            expected[incident_id] = (req.key, result.wall0[i])
            markers[factory.marker(req.key)] = incident_id
    return expected, markers, channels


@dataclass
class WebhookPeers:
    """The webhook receiver and the fake DNS, both threads in this process (127.0.0.1)."""

    receiver: Any  # harness.peers.webhook_receiver.WebhookReceiver
    dns: Any  # harness.peers.dns.FakeDns
    secret: str  # whsec_..., the sink's secret (the daemon gets it through the environment)

    @property
    def url(self) -> str:
        """The receiver under a DNS name: an IP-literal URL has no domain to verify."""
        return str(self.receiver.url).replace(HOST, "localhost", 1)

    @property
    def host(self) -> str:
        return "localhost"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.receiver.stop()
        with contextlib.suppress(Exception):
            self.dns.stop()


def start_webhook_peers() -> WebhookPeers:
    from eyetok.standard_webhooks import new_secret
    from harness.peers.dns import FakeDns
    from harness.peers.webhook_receiver import WebhookReceiver

    secret = new_secret()
    receiver = WebhookReceiver({"bench": secret}, host=HOST)
    dns = FakeDns(host=HOST)
    receiver.start()
    try:
        dns.start()
    except Exception:
        receiver.stop()
        raise
    return WebhookPeers(receiver, dns, secret)


def burst_config(args: argparse.Namespace, hook: WebhookPeers | None) -> str | None:
    """The burst daemon's EYETOK_CONFIG (None: the defaults)."""
    slack = (
        f"{{type: slack, rate_per_channel: {args.slack_rate:g}}}"
        if args.slack_rate > 0
        else "{type: slack}"
    )
    if hook is None:
        return f"sinks:\n  slack: {slack}\n" if args.slack_rate > 0 else None
    # Every SEV channel of the operator goes ONLY to the webhook sink; the Slack sink stays
    # (verified) for the operator notices (delivery.operator_notices, #eyetok-operator).
    route = f"[{{sink: {WEBHOOK_SINK}, target: {WEBHOOK_TARGET}}}]"
    routes = "".join(f'        "{ch}": {route}\n' for ch in SEV_CHANNELS)
    return (
        "sinks:\n"
        f"  slack: {slack}\n"
        f'  {WEBHOOK_SINK}: {{type: webhook, url: "{hook.url}", '
        f"secret_env: {WEBHOOK_SECRET_ENV}}}\n"
        "tenants:\n"
        "  operator:\n"
        "    tier: operator\n"
        "    policy:\n"
        "      routes:\n"
        f"{routes}"
        "verification: {txt_every_s: 0.1, txt_for_s: 30}\n"
    )


def verify_webhook_sync(base_url: str, hook: WebhookPeers, limit_s: float) -> dict[str, Any]:
    """The webhook's real ownership handshake: start it, publish the nonce in TXT
    ``_eyetok-verify.<host>`` on the fake DNS, poll ``GET /api/v1/sinks`` (bounded) until
    the sink is deliverable."""
    auth = {"authorization": f"Bearer {ROOT_TOKEN}"}
    t0 = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        started = client.post(
            f"/api/v1/sinks/{WEBHOOK_SINK}/verification",
            json={"requested_by": "bench"},
            headers=auth,
        )
        if started.status_code != 200:
            raise RuntimeError(f"webhook verification: {started.status_code} {started.text}")
        record = f"_eyetok-verify.{hook.host}"
        hook.dns.set_txt(record, str(started.json()["nonce"]))
        deadline = t0 + limit_s
        while time.perf_counter() < deadline:
            listed = client.get("/api/v1/sinks", headers=auth)
            sinks = listed.json().get("sinks", []) if listed.status_code == 200 else []
            live = {s["sink_id"] for s in sinks if s.get("deliverable")}
            if WEBHOOK_SINK in live:
                return {
                    "handshake_s": round(time.perf_counter() - t0, 2),
                    "txt_record": record,
                    "deliverable_sinks": sorted(live),
                }
            time.sleep(0.05)
    raise RuntimeError(f"webhook sink {WEBHOOK_SINK} not deliverable within {limit_s}s")


def wait_for_webhooks(
    receiver: Any,
    expected: dict[str, tuple[str, float]],  # incident_id -> (request key, wall at send)
    limit_s: float,
    *,
    start_index: int,
    mono_to_wall: float,  # time.time() - time.monotonic(), sampled before the burst
) -> dict[str, Any]:
    """Wait (bounded) until every expected incident's ``incident.opened`` webhook arrived.
    Arrival is the receiver's ``at`` (``time.monotonic()`` once the request line and headers
    were read), put on the wall clock of the sends; matched by ``data.incident_id``."""
    arrived: dict[str, float] = {}
    channels: dict[str, int] = {}
    types: dict[str, int] = {}
    statuses: dict[str, int] = {}
    seen = start_index
    unverified = duplicates = other = undecodable = 0
    problems: list[str] = []
    t_start = time.perf_counter()
    deadline = t_start + limit_s
    while True:
        batch = receiver.deliveries[seen:]
        seen += len(batch)
        for hook in batch:
            statuses[str(hook.status)] = statuses.get(str(hook.status), 0) + 1
            if not hook.verified:
                unverified += 1
                if len(problems) < 3:
                    problems.append(str(hook.problem))
                continue
            try:
                body = hook.json()
                data = body.get("data") or {}
                incident_id, kind = data.get("incident_id"), str(body.get("type"))
            except (ValueError, AttributeError):
                undecodable += 1
                continue
            types[kind] = types.get(kind, 0) + 1
            if incident_id not in expected or kind != "incident.opened":
                other += 1
                continue
            if incident_id in arrived:
                duplicates += 1
                continue
            arrived[incident_id] = hook.at + mono_to_wall
            channel = str(data.get("sev_channel"))
            channels[channel] = channels.get(channel, 0) + 1
        if len(arrived) >= len(expected) or time.perf_counter() >= deadline:
            break
        time.sleep(0.1)
    lat = [(arrived[i] - expected[i][1]) * 1000.0 for i in arrived]
    first = min(arrived.values(), default=0.0)
    last = max(arrived.values(), default=0.0)
    return {
        "sink": "webhook",
        "expected": len(expected),
        "arrived": len(arrived),
        "missing": len(expected) - len(arrived),
        "waited_s": round(time.perf_counter() - t_start, 2),
        "limit_s": limit_s,
        "p50_ms": rounded(pct(lat, 50), 1),
        "p90_ms": rounded(pct(lat, 90), 1),
        "p99_ms": rounded(pct(lat, 99), 1),
        "max_ms": rounded(max(lat, default=None), 1),
        "min_ms": rounded(min(lat, default=None), 1),
        "posts_per_s": round((len(arrived) - 1) / (last - first), 1)
        if len(arrived) > 1 and last > first
        else None,
        "last_arrival_after_first_send_s": round(
            last - min(sent for _, sent in expected.values()), 2
        )
        if arrived
        else None,
        "by_channel": channels,
        "by_type": types,
        "receiver_answers": statuses,
        "deliveries": seen - start_index,
        "duplicates": duplicates,
        "unverified": unverified,
        "unverified_problems": problems,
        "undecodable": undecodable,
        "other_deliveries": other,
    }


def slack_alert_posts(watch: SlackWatch, expected: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """What Slack got during a --sink webhook burst: it should carry no alert at all."""
    posts = watch.fetch_new()
    naming = 0
    channels: dict[str, int] = {}
    for post in posts:
        blob = (post.get("text") or "") + json.dumps(post.get("blocks") or [])
        if any(m in expected for m in ANY_INCIDENT.findall(blob)):
            naming += 1
        channel = str(post.get("channel"))
        channels[channel] = channels.get(channel, 0) + 1
    return {"posts": len(posts), "naming_a_burst_incident": naming, "by_channel": channels}


def journal_stats(db_path: Path) -> dict[str, Any]:
    """Group commits as the journal shows them: signals sharing ``journalled_at`` were
    written by one commit (the history actor stamps each commit once)."""
    try:
        import duckdb

        con = duckdb.connect(str(db_path), read_only=True)
        try:
            rows = con.execute(
                "SELECT count(*) AS n, epoch(journalled_at)::DOUBLE AS j, "
                "min(epoch(journalled_at) - epoch(received_at))::DOUBLE AS w "
                "FROM signals GROUP BY journalled_at ORDER BY j"
            ).fetchall()
            wait = con.execute(
                "SELECT quantile_cont(epoch(journalled_at) - epoch(received_at), [0.5, 0.99]) "
                "FROM signals"
            ).fetchone()
            lanes = con.execute(
                "SELECT d.target, count(*), quantile_cont(o.latency_ms, 0.5), "
                "quantile_cont(o.latency_ms, 0.99), "
                "(max(epoch(o.finished_at)) - min(epoch(o.finished_at)))::DOUBLE "
                "FROM deliveries d JOIN delivery_outcomes o USING (delivery_id) "
                "GROUP BY d.target ORDER BY d.target"
            ).fetchall()
        finally:
            con.close()
    except Exception as exc:  # a diagnostic: never fail the run over it
        return {"error": f"{type(exc).__name__}: {exc}"}
    if len(rows) < 2:
        return {"commits": len(rows)}
    sizes = [r[0] for r in rows]
    gaps = [(b[1] - a[1]) * 1000.0 for a, b in itertools.pairwise(rows)]
    q = (wait[0] if wait else None) or [None, None]
    lane_stats = {
        target: {
            "posts": n,
            "latency_p50_ms": rounded(p50, 1),
            "latency_p99_ms": rounded(p99, 1),
            "ms_per_post": rounded(span * 1000.0 / n, 1) if n and span else None,
        }
        for target, n, p50, p99, span in lanes
    }
    return {
        "lanes": lane_stats,
        "signal_commits": len(rows),
        "signals": sum(sizes),
        "batch_mean": round(sum(sizes) / len(sizes), 1),
        "batch_p50": pct([float(x) for x in sizes], 50),
        "batch_max": max(sizes),
        "interval_p50_ms": rounded(pct(gaps, 50), 1),
        "interval_p90_ms": rounded(pct(gaps, 90), 1),
        "receipt_to_commit_start_p50_ms": rounded(q[0] * 1000.0, 1) if q[0] is not None else None,
        "receipt_to_commit_start_p99_ms": rounded(q[1] * 1000.0, 1) if q[1] is not None else None,
    }
