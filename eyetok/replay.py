"""``eyetok replay --explain``: route recorded payloads in-process, as the daemon would.

:class:`Judge` plays the incidents actor for one tenant: it keeps the open incidents
and the recent resolutions across every payload of the replay (so an earlier file's
incident is known to a later one), tells the severity rules whether each signal's issue
is already known, and decides open / update / resolve / audit with the same pure
functions the daemon uses. Each decision becomes one line: the JSON object a script
reads, or, with ``--format table``, one aligned row a person reads, with the instant in
America/New_York (the tenant's business-hours zone) and in UTC.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from eyetok.config import Settings
from eyetok.incidents import NOTHING_OPEN, IncidentKey, apply, decide, key_of, knows
from eyetok.messages import Incident, IncidentAction, Signal
from eyetok.policy import destinations_for
from eyetok.severity import classify, facts_of, why


class NoPayloadsError(Exception):
    """The paths named no payload at all (an empty folder, a glob matching nothing)."""


def payload_files(paths: Sequence[Path]) -> list[Path]:
    """Payload files in the order given; a folder gives its ``*.json`` sorted by name, a
    glob the shell left unexpanded its matches. ``NAME.headers.json`` files are the
    sidecars of ``NAME.json``, never payloads. Raises :class:`NoPayloadsError` for a
    folder without payloads or a glob that matches none."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [f for f in sorted(path.glob("*.json")) if not _sidecar(f)]
            if not found:
                raise NoPayloadsError(f"{path} holds no *.json payload")
        elif not path.exists() and glob.has_magic(str(path)):
            found = [Path(p) for p in sorted(glob.glob(str(path))) if not _sidecar(Path(p))]
            if not found:
                raise NoPayloadsError(f"{path} matches no payload")
        else:
            found = [path]
        files.extend(found)
    return files


def _sidecar(path: Path) -> bool:
    return path.name.endswith(".headers.json")


class Judge:
    """The incidents actor's decision for one tenant, over a whole replay."""

    def __init__(self, settings: Settings, tenant_id: str) -> None:
        self.settings = settings
        self.tenant = settings.tenants[tenant_id]
        self.open: dict[IncidentKey, Incident] = {}
        self.resolved: dict[IncidentKey, datetime] = {}

    def line(self, signal: Signal, file: str) -> tuple[dict[str, Any], bool]:
        """The explained line for ``signal`` and whether it would send anything."""
        window = self.tenant.policy.business_hours
        known = knows(self.open, self.resolved, key_of(signal), signal.received_at)
        routing = classify(signal, known=known, window=window)
        action, incident = decide(self.open, signal, routing)
        apply(self.open, action, incident, self.resolved)
        channel = incident.sev_channel if incident else routing.sev_channel
        destinations = destinations_for(
            self.tenant.policy, channel if incident else None, self.settings.sink_types()
        )
        at = signal.received_at
        line: dict[str, Any] = {
            "file": file,
            "tenant": signal.tenant,
            "source": signal.source,
            "resource": signal.resource,
        }
        if signal.source == "sentry":
            line["sentry_action"] = signal.action
        line |= {
            "action": action.value,
            "severity": (incident.severity if incident else routing.severity).value,
            "rule": routing.rule,
            "sev_channel": channel.value if channel else None,
            "business_hours": routing.business_hours,
            "at": at.isoformat(),
            "at_utc": at.astimezone(UTC).isoformat(),
            "zone": window.zone,
            "local_time": at.astimezone(ZoneInfo(window.zone)).isoformat(),
            "destinations": [f"{d.sink_id}:{d.target}" for d in destinations],
            "incident_key": signal.dedup_key,
            "incident_id": incident.incident_id if incident else None,
            "title": signal.title,
            "marks": sorted(signal.marks),
            "why": msgspec.to_builtins(why(facts_of(signal, known=known))),
        }
        if action is IncidentAction.RESOLVE and incident is None:
            line["note"] = NOTHING_OPEN
        return line, bool(destinations) and incident is not None


_COLUMNS = (
    ("local", "local time"),
    ("utc", "time (UTC)"),
    ("file", "file"),
    ("action", "action"),
    ("severity", "severity"),
    ("sev_channel", "channel"),
    ("rule", "rule"),
    ("title", "title / why"),
)


def table(lines: Sequence[dict[str, Any]]) -> list[str]:
    """One aligned row per line (a header first): for people, not scripts."""
    rows = [dict(_COLUMNS)] + [_row(line) for line in lines]
    keys = [key for key, _ in _COLUMNS]
    widths = {k: max(len(r.get(k, "")) for r in rows) for k in keys[:-1]}
    out = []
    for r in rows:
        cells = [r.get(k, "").ljust(widths[k]) for k in keys[:-1]] + [r.get(keys[-1], "")]
        out.append("  ".join(cells).rstrip())
    return out


def _row(line: dict[str, Any]) -> dict[str, str]:
    name = Path(str(line.get("file", ""))).name
    if "error" in line:
        return {"file": name, "action": "error", "title": str(line["error"])}
    utc = datetime.fromisoformat(line["at_utc"])
    local = utc.astimezone(ZoneInfo(line["zone"]))
    explained = line["why"]
    misses = [f"{m['rule']}: {m['failed']}" for m in explained["louder_misses"]]
    reason = line.get("note") or "; ".join(explained["held"]) or "no rule above it held"
    detail = f"{line['title']} — {reason}"
    if misses:
        detail += f" (not louder: {misses[-1]})"
    return {
        "local": local.strftime("%a %Y-%m-%d %H:%M %Z"),
        "utc": utc.strftime("%H:%M UTC"),
        "file": name,
        "action": line["action"],
        "severity": line["severity"],
        "sev_channel": line["sev_channel"] or "-",
        "rule": line["rule"],
        "title": detail,
    }
