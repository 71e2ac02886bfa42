"""The daily review: the notification stream summarised, its anomalies flagged.

Pure: the history's read side hands in counted rows, this module decides what is an
anomaly and how the review reads to the on-call. An anomaly is one of:

- ``burst``: a tenant's alerts in one hour above 3x its hourly mean of the 7 days before
  the window (and at least :data:`BURST_FLOOR`, so one alert on a quiet tenant is not one);
  the mean needs at least :data:`MIN_BASELINE` of history (over less, it is taken over
  the hours there are; with less than that, nothing is a burst);
- ``refused`` / ``dead``: any delivery refused (the sink said no, or it is unverified) or
  dead (retries exhausted);
- ``suppression``: a cross-tenant cluster fired (audit ``cluster_fired``);
- ``budget_cap``: a tenant hit its hourly budget (audit ``budget_capped``).

An anomaly's id is a digest of what it is about, so reviewing the same hours twice
flags nothing twice; the on-call's verdict (benign or escalate) is kept beside it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import msgspec

from eyetok.guard import scrub

BURST_FACTOR = 3.0
BURST_FLOOR = 3
BASELINE = timedelta(days=7)
MIN_BASELINE = timedelta(hours=24)  # less history than this: no burst is called

AUDIT_ANOMALIES = {"cluster_fired": "suppression", "budget_capped": "budget_cap"}
FAILED_OUTCOMES = ("refused", "refused_unverified", "dead")


class StreamCount(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    sink_id: str
    severity: str
    outcome: str
    count: int


class Anomaly(msgspec.Struct, frozen=True, kw_only=True):
    anomaly_id: str
    kind: str  # burst | refused | dead | suppression | budget_cap
    tenant: str
    subject: str  # what it is about: a delivery id, a tenant's hour, an audit line
    detail: str
    occurred_at: datetime
    verdict: str | None = None  # benign | escalate (the on-call's, once noted)
    note: str | None = None
    noted_by: str | None = None
    noted_at: datetime | None = None


class Review(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime
    until: datetime
    notifications: int
    stream: tuple[StreamCount, ...]
    anomalies: tuple[Anomaly, ...]


class NoteAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    message: str
    anomaly: Anomaly | None = None


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(text: str) -> timedelta:
    """``24h``, ``90m``, ``7d``, ``600s``: how far back a review reads."""
    match = _SINCE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 24h, 90m or 7d")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not 0 < seconds <= 31 * 86_400:
        raise ValueError(f"{text!r} must be more than nothing and at most 31 days")
    return timedelta(seconds=seconds)


def _span(hours: float) -> str:
    return "7 days" if hours >= 168 else f"{hours / 24:.1f} days"


def anomaly_id(kind: str, subject: str) -> str:
    return "anm_" + hashlib.sha256(f"{kind}|{subject}".encode()).hexdigest()[:16]


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """What a burst is measured against: each tenant's alerts in the 7 days before the
    window, and how many hours of those 7 days the history covers."""

    alerts: Mapping[str, int]
    hours: float


def bursts(hourly: Iterable[tuple[str, datetime, int]], baseline: Baseline) -> list[Anomaly]:
    """``hourly``: (tenant, hour start, alerts) in the window, measured against the
    hourly mean over the hours the baseline covers. With less than :data:`MIN_BASELINE`
    of history there is no mean to be above: nothing is a burst (a fresh install's first
    alerts are not one)."""
    if baseline.hours < MIN_BASELINE.total_seconds() / 3600:
        return []
    out = []
    for tenant, hour, count in hourly:
        mean = baseline.alerts.get(tenant, 0) / baseline.hours
        if count >= BURST_FLOOR and count > BURST_FACTOR * mean:
            subject = f"{tenant}@{hour.isoformat()}"
            out.append(
                Anomaly(
                    anomaly_id=anomaly_id("burst", subject),
                    kind="burst",
                    tenant=tenant,
                    subject=subject,
                    detail=(
                        f"{count} alerts in the hour from {hour:%Y-%m-%d %H:%M} UTC, "
                        f"{BURST_FACTOR:g}x its hourly mean over {_span(baseline.hours)} "
                        f"is {BURST_FACTOR * mean:.1f}"
                    ),
                    occurred_at=hour,
                )
            )
    return out


def failed_deliveries(
    rows: Iterable[tuple[str, str, str, str, str, datetime, str]],
) -> list[Anomaly]:
    """``rows``: (delivery_id, tenant, sink_id, target, outcome, finished_at, detail)."""
    out = []
    for delivery_id, tenant, sink_id, target, outcome, finished_at, detail in rows:
        kind = "dead" if outcome == "dead" else "refused"
        out.append(
            Anomaly(
                anomaly_id=anomaly_id(kind, delivery_id),
                kind=kind,
                tenant=tenant,
                subject=delivery_id,
                detail=f"{outcome} on {sink_id} {target}: {detail}"[:500],
                occurred_at=finished_at,
            )
        )
    return out


def audit_events(rows: Iterable[tuple[datetime, str, str, str]]) -> list[Anomaly]:
    """``rows``: (logged_at, tenant, event, detail) of the audit events that are anomalies."""
    out = []
    for logged_at, tenant, event, detail in rows:
        kind = AUDIT_ANOMALIES[event]
        subject = f"{event}|{tenant}|{logged_at.isoformat()}|{detail}"
        out.append(
            Anomaly(
                anomaly_id=anomaly_id(kind, subject),
                kind=kind,
                tenant=tenant,
                subject=subject[:300],
                detail=f"{event}: {detail}"[:500],
                occurred_at=logged_at,
            )
        )
    return out


def summary(review: Review, *, limit: int = 15) -> str:
    """The review as the operator reads it in one message."""
    by_outcome: dict[str, int] = {}
    by_tenant: dict[str, int] = {}
    for row in review.stream:
        by_outcome[row.outcome] = by_outcome.get(row.outcome, 0) + row.count
        by_tenant[row.tenant] = by_tenant.get(row.tenant, 0) + row.count
    outcomes = ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items())) or "none"
    busiest = ", ".join(
        f"{t} {n}" for t, n in sorted(by_tenant.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    )
    lines = [
        f":mag: Daily review {review.since:%Y-%m-%d %H:%M} to {review.until:%Y-%m-%d %H:%M} "
        f"UTC: {review.notifications} notifications ({outcomes}).",
    ]
    if busiest:
        lines.append(f"Busiest tenants: {busiest}.")
    open_ = [a for a in review.anomalies if a.verdict is None]
    if not review.anomalies:
        lines.append("No anomalies. Nothing to note.")
    else:
        lines.append(
            f"{len(review.anomalies)} anomalies, {len(open_)} without a verdict. Note each: "
            "`eyetok review --note ID --benign TEXT` or `--escalate TEXT`."
        )
        for a in open_[:limit]:
            lines.append(f"- `{a.anomaly_id}` {a.kind} {a.tenant}: {a.detail}")
        if len(open_) > limit:
            lines.append(f"- … and {len(open_) - limit} more (`eyetok review`)")
    return scrub("\n".join(lines))
