"""How long the history keeps what (the ``retention:`` section), as pure data.

Defaults (issue 19): signals, notifications and audit rows 90 days; an incident until
90 days after it resolves (an open one is kept however old); the verification log, the
anomaly journal, drill receipts and the tenant configuration log 400 days, because the
quarterly and yearly routines read them. ``archive_dir`` set: each day is exported as
Parquet before it is pruned (state/history/retention.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from eyetok.errors import ConfigError


class RetentionOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    signals_days: int = 90
    notifications_days: int = 90
    audit_days: int = 90
    incidents_days_after_resolved: int = 90
    # the verification log, anomaly journal, drill receipts, tenant configuration log
    journals_days: int = 400
    archive_dir: str | None = None  # export each day as Parquet here before pruning it
    batch_rows: int = 5000  # rows deleted per transaction (ingest waits at most one)

    def __post_init__(self) -> None:
        for name in (
            "signals_days",
            "notifications_days",
            "audit_days",
            "incidents_days_after_resolved",
            "journals_days",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1 day")
        if not 100 <= self.batch_rows <= 1_000_000:
            raise ConfigError("batch_rows", "must be between 100 and 1000000")


class Horizons(msgspec.Struct, frozen=True, kw_only=True):
    """The instants before which each kind of row goes, for one run (stamped once, so a
    resumed run prunes exactly what the interrupted one set out to)."""

    signals: datetime
    notifications: datetime
    audit: datetime
    incidents: datetime  # an incident resolved before this goes
    journals: datetime
    bookkeeping: datetime  # where the journal was applied: a day is plenty


def horizons(options: RetentionOptions, now: datetime) -> Horizons:
    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    return Horizons(
        signals=ago(options.signals_days),
        notifications=ago(options.notifications_days),
        audit=ago(options.audit_days),
        incidents=ago(options.incidents_days_after_resolved),
        journals=ago(options.journals_days),
        bookkeeping=ago(1),
    )
