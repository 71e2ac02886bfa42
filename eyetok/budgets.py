"""Hourly budgets, pure: one tenant's clock hour and what spending one alert in it does.

The budgets actor (actors/budgets.py) owns a :class:`Window` per tenant and asks
:func:`spend` about each delivery; ``eyetok replay --explain`` asks the same function, so
the explanation and the daemon cannot disagree.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from eyetok.messages import Deliver, Severity

TOP_INCIDENTS = 10
_RANK = {s: i for i, s in enumerate(Severity)}  # critical first


class Spent(enum.StrEnum):
    """What the budget said to one alert."""

    UNCAPPED = "uncapped"  # the tenant's tier has no cap (the operator)
    WITHIN = "within"  # delivered: the alert fits this hour's budget (or already did)
    CAPPED = "capped"  # held: the first alert over the budget this hour (the cap event)
    HELD = "held"  # held: over the budget, the cap already announced


@dataclass
class Window:
    """One tenant's clock hour: who was admitted, what waits for the digest."""

    start: datetime
    admitted: set[str] = field(default_factory=set)  # signal ids
    held: list[Deliver] = field(default_factory=list)
    capped: bool = False


def hour_of(at: datetime) -> datetime:
    """The clock hour ``at`` falls in (hours are whole in every zone EyeTok serves)."""
    return at.replace(minute=0, second=0, microsecond=0)


def spend(window: Window, signal_id: str, cap: int | None) -> Spent:
    """Spend one unit of ``window``'s budget on ``signal_id`` (once per signal: its other
    deliveries ride along). The caller holds what is not WITHIN or UNCAPPED."""
    if cap is None:
        return Spent.UNCAPPED
    if signal_id in window.admitted:
        return Spent.WITHIN
    if len(window.admitted) < cap:
        window.admitted.add(signal_id)
        return Spent.WITHIN
    if window.capped:
        return Spent.HELD
    window.capped = True
    return Spent.CAPPED


def digest_text(tenant: str, cap: int, window: Window) -> str:
    """The compressed-mode digest: counts by severity, top incidents (critical first)."""
    signals: dict[str, Deliver] = {}
    for deliver in window.held:
        signals.setdefault(deliver.signal_id or deliver.delivery_id, deliver)
    by_severity = Counter(d.incident.severity for d in signals.values())
    per_incident: dict[str, list[Deliver]] = {}
    for deliver in signals.values():
        per_incident.setdefault(deliver.incident.incident_id, []).append(deliver)
    top = sorted(
        per_incident.values(),
        key=lambda ds: (_RANK[ds[-1].incident.severity], -len(ds), ds[0].received_at),
    )[:TOP_INCIDENTS]
    end = window.start + timedelta(hours=1)
    counts = ", ".join(
        f"{severity.value} {by_severity[severity]}"
        for severity in Severity
        if by_severity[severity]
    )
    lines = [
        f":package: Compressed-mode digest for `{tenant}`, "
        f"{window.start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC: your hourly budget of {cap} alerts "
        f"was reached, and {len(signals)} more alerts were held for this summary.",
        f"By severity: {counts}.",
        "Top incidents:",
    ]
    for ds in top:
        incident = ds[-1].incident
        lines.append(
            f"• [{incident.severity.value}] {incident.title[:140]} ({len(ds)} alerts, "
            f"incident `{incident.incident_id}`, last {ds[-1].received_at:%H:%M:%S} UTC)"
        )
    if len(per_incident) > len(top):
        lines.append(f"… and {len(per_incident) - len(top)} more incidents.")
    return "\n".join(lines)
