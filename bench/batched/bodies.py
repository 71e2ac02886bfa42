"""The requests of a run: probe verdict arrays and Alertmanager webhook groups (the same
bodies for the ceiling and EyeTok), and the same alerts as Alertmanager's own
``POST /api/v2/alerts`` bodies.

Probe requests are JSON arrays of P verdicts on distinct servers (each failing one opens
its own incident; 85% failing: down/timeout/degraded over five error kinds, five
registries and their ASNs; 15% ``ok``, resolving a server that failed 2C requests
earlier, or a fresh server's when there is none). Alertmanager requests are one alert
group of P alerts as ``webhook_config`` sends it (version 4, groupKey, truncatedAlerts,
status, receiver, groupLabels, commonLabels, commonAnnotations, externalURL, alerts[]
with status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint), each
alert its own instance and fingerprint; 80% firing (severity warning 60%, critical 20%,
info 20%), 20% resolved (an alert of 2C requests earlier, or a fresh one). Compact JSON,
as Go's encoder and most probes write it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from bench.batched import TENANT
from bench.ingest import HOST
from bench.ingest.bodies import Request

_encode = msgspec.json.Encoder().encode

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


API_ALERTS_PATH = "/api/v2/alerts"


def api_alerts(request: Request) -> Request:
    """The alerts of a webhook group as Alertmanager's own ``POST /api/v2/alerts`` body
    (what Prometheus sends it: labels, annotations, startsAt, generatorURL, and endsAt
    for a resolved alert only), for port 1 like :meth:`Bodies.requests`."""
    group = json.loads(request.body)
    alerts = []
    for alert in group["alerts"]:
        posted = {
            "labels": alert["labels"],
            "annotations": alert.get("annotations", {}),
            "startsAt": alert["startsAt"],
            "generatorURL": alert.get("generatorURL", ""),
        }
        if alert["status"] == "resolved":
            posted["endsAt"] = alert["endsAt"]
        alerts.append(posted)
    body = _encode(alerts)
    head = (
        f"POST {API_ALERTS_PATH} HTTP/1.1\r\nHost: {HOST}:1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return Request(request.key, request.issue_id, body, head.encode("latin-1") + body, {})
