"""What every alert of one batched body shares (Alertmanager, probe, generic): a
:class:`Signal` with the body's fields set and each alert's own left blank. Each alert's
signal is this one with its own fields replaced (``msgspec.structs.replace``), several
times cheaper than building a Signal by keyword for each alert of a batch."""

from __future__ import annotations

from datetime import datetime

from eyetok.messages import Signal, SignalKind


def shared_signal(
    source: str, *, tenant: str, received_at: datetime, is_metric_alert: bool = False
) -> Signal:
    """The fields the alerts of one ``source`` body share, ready to be replaced per alert."""
    return Signal(
        signal_id="",
        tenant=tenant,
        source=source,
        resource=source,
        action="",
        kind=SignalKind.ALERT,
        dedup_key="",
        title="",
        received_at=received_at,
        is_metric_alert=is_metric_alert,
    )
