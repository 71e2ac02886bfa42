"""The Alertmanager source: Prometheus Alertmanager's webhook receiver payload.

``POST /hooks/alertmanager/{tenant}`` takes the body Alertmanager's ``webhook_config``
sends (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config), one
notification per alert group::

    {
      "version": "4",
      "groupKey": <string>,             # key identifying the group of alerts
      "truncatedAlerts": <int>,         # alerts left out because of max_alerts
      "status": "<resolved|firing>",
      "receiver": <string>,
      "groupLabels": <object>,
      "commonLabels": <object>,
      "commonAnnotations": <object>,
      "externalURL": <string>,          # backlink to the Alertmanager
      "alerts": [
        {
          "status": "<resolved|firing>",
          "labels": <object>,
          "annotations": <object>,
          "startsAt": "<rfc3339>",
          "endsAt": "<rfc3339>",
          "generatorURL": <string>,     # identifies the entity that caused the alert
          "fingerprint": <string>       # fingerprint to identify the alert
        }, ...
      ]
    }

Only ``alerts`` and, in each alert, ``status`` and ``labels`` are required; every
documented field is type-checked when present (labels and annotations are string
maps), unknown fields are ignored. A wrong type or a missing field is refused with a
:class:`~eyetok.errors.MalformedPayloadError` naming the JSON path
(``$.alerts[1].status``).

Each alert of the group becomes one :class:`~eyetok.messages.Signal` (the group's own
``status`` is not used: a group that is "firing" may carry resolved alerts):

* ``source``/``resource`` ``alertmanager``, ``action`` the alert's status;
* ``dedup_key`` ``am:{fingerprint}`` (Alertmanager's hash of the alert's labels, stable
  between firing and resolved); an alert without ``fingerprint`` (Alertmanager before
  0.19) gets ``am:`` and 16 hex digits of SHA-256 over its sorted labels;
* ``kind`` RESOLVE when the alert's ``status`` is ``resolved`` (it resolves the
  incident the firing alert opened), else ALERT;
* ``title`` ``annotations.summary``, else ``labels.alertname``; ``message``
  ``annotations.description``; ``url`` ``generatorURL``; ``culprit``
  ``labels.instance``; ``environment`` ``labels.env`` or ``labels.environment``;
  ``tags`` the alert's labels; ``is_metric_alert`` true;
* the level comes from the ``severity`` label (case-insensitive), through the same
  (level, marks) facts as a generic alert's declared severity:

  ======================================  ==========  ==============================
  ``severity`` label                      severity    level (+ mark) -> rule
  ======================================  ==========  ==============================
  ``critical`` ``fatal`` ``emergency``    critical    ``fatal`` -> ``fatal``
  ``page``
  ``high`` ``error`` ``major``            high        ``error`` + ``declared_high``
                                                      -> ``declared-high``
  ``medium`` ``minor``, missing, other    medium      ``error`` (a metric alert) ->
                                                      ``error-regression-or-performance``
  ``warning`` ``warn`` ``low``            low         ``warning`` -> ``warning``
  ``info`` ``informational`` ``none``     info        ``info`` -> ``info-debug-audit``
  ``debug``
  ======================================  ==========  ==============================

  ``none`` is what kube-prometheus gives its always-firing ``Watchdog``: audit only.
  The recognisers then read the title, description and labels as they read a Sentry
  event (a label ``check.type=synthetic`` marks a synthetic check, and so on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import msgspec
from msgspec.structs import replace as _replace

from eyetok.messages import Severity, Signal, SignalKind
from eyetok.recognisers import Recognisers, marks_for
from eyetok.sources.generic import SEVERITY_FACTS, decode
from eyetok.sources.shared import shared_signal

__all__ = ["SEVERITY_LABELS", "AlertmanagerPayload", "normalise", "severity_of"]

SEVERITY_LABELS: dict[str, Severity] = {
    **dict.fromkeys(("critical", "fatal", "emergency", "page"), Severity.CRITICAL),
    **dict.fromkeys(("high", "error", "major"), Severity.HIGH),
    **dict.fromkeys(("medium", "minor"), Severity.MEDIUM),
    **dict.fromkeys(("warning", "warn", "low"), Severity.LOW),
    **dict.fromkeys(("info", "informational", "none", "debug"), Severity.INFO),
}
"""The ``severity`` label's values EyeTok reads; anything else (or none) is medium."""


class _Alert(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: str | None = msgspec.field(default=None, name="startsAt")
    ends_at: str | None = msgspec.field(default=None, name="endsAt")
    generator_url: str | None = msgspec.field(default=None, name="generatorURL")
    fingerprint: str | None = None


class AlertmanagerPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The webhook body of one alert group (unknown fields ignored)."""

    alerts: list[_Alert]
    version: str | None = None
    group_key: str | None = msgspec.field(default=None, name="groupKey")
    truncated_alerts: int | None = msgspec.field(default=None, name="truncatedAlerts")
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    group_labels: dict[str, str] | None = msgspec.field(default=None, name="groupLabels")
    common_labels: dict[str, str] | None = msgspec.field(default=None, name="commonLabels")
    common_annotations: dict[str, str] | None = msgspec.field(
        default=None, name="commonAnnotations"
    )
    external_url: str | None = msgspec.field(default=None, name="externalURL")


def severity_of(labels: dict[str, str]) -> Severity:
    """The severity an alert's ``severity`` label declares (medium when none)."""
    label = labels.get("severity")
    if label is None:
        return Severity.MEDIUM
    found = SEVERITY_LABELS.get(label)  # the usual label, already stripped and lower case
    if found is not None:
        return found
    return SEVERITY_LABELS.get(label.strip().lower(), Severity.MEDIUM)


def normalise(
    body: bytes,
    *,
    tenant: str,
    received_at: datetime,
    new_id: Callable[[], str],
    recognisers: Recognisers,
) -> list[Signal]:
    """Decode one Alertmanager notification; one :class:`Signal` per alert."""
    payload: AlertmanagerPayload = decode(body, AlertmanagerPayload, "alertmanager webhook")
    shared = shared_signal(
        "alertmanager", tenant=tenant, received_at=received_at, is_metric_alert=True
    )
    return [_signal(alert, shared, new_id, recognisers) for alert in payload.alerts]


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _signal(
    alert: _Alert, shared: Signal, new_id: Callable[[], str], recognisers: Recognisers
) -> Signal:
    labels = alert.labels
    annotations = alert.annotations
    level, declared = SEVERITY_FACTS[severity_of(labels)]
    title = annotations.get("summary") or labels.get("alertname") or "Alertmanager alert"
    message = annotations.get("description", "")
    tags = tuple(labels.items())
    return _replace(
        shared,
        signal_id=new_id(),
        action=alert.status,
        kind=SignalKind.RESOLVE if alert.status == "resolved" else SignalKind.ALERT,
        dedup_key=f"am:{alert.fingerprint or _fingerprint(labels)}",
        title=title,
        level=level,
        message=message,
        culprit=labels.get("instance", ""),
        url=alert.generator_url or "",
        environment=labels.get("env") or labels.get("environment") or "",
        tags=tags,
        marks=declared | marks_for(recognisers, title=title, message=message, tags=tags),
    )
