"""The Sentry source: check the signature, decode one webhook, normalise it to a Signal.

Sentry sends two families of webhook, both JSON:

* **Integration-platform webhooks** (an internal integration). The
  ``Sentry-Hook-Resource`` header names the resource and the body carries ``action``,
  ``data``, ``actor`` and ``installation``; ``Sentry-Hook-Signature`` is the hex
  HMAC-SHA256 of the raw body keyed with the integration's client secret. EyeTok reads
  four resources, as documented at
  https://docs.sentry.io/organization/integrations/integration-platform/webhooks/ :

  ``event_alert``  (issue-alerts/)  ``action`` is always ``triggered``; the event is
                   ``data.event``, its issue id ``data.event.issue_id``, the rule label
                   ``data.triggered_rule``.
  ``metric_alert`` (metric-alerts/) ``action`` is ``critical``, ``warning`` or
                   ``resolved``; ``data.metric_alert`` is the incident, with
                   ``alert_rule`` and the per-organisation ``identifier``;
                   ``data.description_title``/``description_text``/``web_url``.
  ``issue``        (issues/) ``action`` is ``created``, ``resolved``, ``assigned``,
                   ``unresolved`` and ``ignored`` (renamed ``archived`` in newer
                   docs; both are read); the issue is ``data.issue`` (camelCase keys:
                   ``userCount``, ``isUnhandled``, ``issueCategory``...).
  ``error``        (errors/) ``action`` is ``created``; the event is ``data.error``,
                   its issue id ``data.error.issue_id`` (the page says
                   ``data['event']['issue_id']``, its example payload disagrees).

* **The legacy WebHooks plugin** (``sentry/plugins/sentry_webhooks/plugin.py``): no
  resource header, no signature; a flat body with ``id`` (the issue id), ``project``
  (the slug), ``project_name``, ``project_slug``, ``culprit``, ``level`` (the event's
  ``level`` tag), ``logger``, ``message``, ``url``, ``triggering_rules`` and the whole
  ``event``. :func:`infer_resource` tells the shapes apart when the header is absent.

Decoding is typed (msgspec Structs per resource): unknown fields are tolerated, wrong
types and missing required fields are refused with a
:class:`~eyetok.errors.MalformedPayloadError` naming the JSON path. Identifiers
(issue id, alert rule id, incident identifier) may be strings or integers; Sentry has
sent both.

How the Signal fields are derived from these shapes is told, and done, in
:mod:`eyetok.sources.sentry_facts`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal, TypeVar

import msgspec

from eyetok.decoding import decode_json
from eyetok.errors import MalformedPayloadError
from eyetok.messages import Signal, SignalKind
from eyetok.recognisers import Recognisers, marks_for
from eyetok.sources.sentry_facts import (
    Draft,
    event_draft,
    first,
    issue_novelty,
    issue_tags,
    level,
    metadata_title,
    performance_level,
    tag,
    unhandled_by_tags,
)

__all__ = [
    "RESOURCES",
    "infer_resource",
    "normalise",
    "sign",
    "verify",
]

RESOURCES: tuple[str, ...] = ("event_alert", "metric_alert", "issue", "error", "legacy")
"""The ``Sentry-Hook-Resource`` values (and ``legacy``) :func:`normalise` reads."""

_RESOLVING_ISSUE_ACTIONS = frozenset({"resolved", "ignored", "archived"})
# A metric alert's trigger (critical, warning) is not an event level: both fire a
# performance alert, so both read as level error (issue 13).
_METRIC_LEVELS = {"critical": "error", "warning": "error", "resolved": "info"}
_PERFORMANCE_DATASETS = frozenset(
    {"transactions", "generic_metrics", "spans", "events_analytics_platform"}
)


# --- signature ------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """The ``Sentry-Hook-Signature`` Sentry sends: hex HMAC-SHA256 of the raw body."""
    return hmac.digest(secret.encode("utf-8"), body, hashlib.sha256).hex()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether ``signature`` is Sentry's signature of ``body`` (constant time)."""
    if not signature:
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8"))


# --- the wire shapes (typed; unknown fields tolerated) --------------------------------

_Id = str | int


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the decoded shapes: unknown fields are ignored, wrong types refused."""


class _Mechanism(_Wire, frozen=True, kw_only=True):
    type: str | None = None
    handled: bool | None = None


class _ExceptionValue(_Wire, frozen=True, kw_only=True):
    type: str | None = None
    value: str | None = None
    mechanism: _Mechanism | None = None


class _ExceptionInterface(_Wire, frozen=True, kw_only=True):
    values: list[_ExceptionValue] | None = None


class _LogEntry(_Wire, frozen=True, kw_only=True):
    formatted: str | None = None
    message: str | None = None


class _Metadata(_Wire, frozen=True, kw_only=True):
    title: str | None = None
    type: str | None = None
    value: str | None = None


class _Event(_Wire, frozen=True, kw_only=True):
    """A serialised Sentry event (``data.event``, ``data.error``, legacy ``event``)."""

    event_id: str | None = None
    title: str | None = None
    message: str | None = None
    logentry: _LogEntry | None = None
    level: str | None = None
    culprit: str | None = None
    environment: str | None = None
    type: str | None = None
    project: _Id | None = None
    tags: list[tuple[str, str]] | None = None
    exception: _ExceptionInterface | None = None
    user: dict[str, object] | None = None
    metadata: _Metadata | None = None
    url: str | None = None
    web_url: str | None = None
    issue_url: str | None = None
    issue_id: _Id | None = None
    is_new: bool | None = None
    is_new_camel: bool | None = msgspec.field(default=None, name="isNew")
    is_regression: bool | None = None
    is_regression_camel: bool | None = msgspec.field(default=None, name="isRegression")
    # The interface names of events stored before Sentry 9 (legacy plugin payloads).
    old_user: dict[str, object] | None = msgspec.field(default=None, name="sentry.interfaces.User")
    old_exception: _ExceptionInterface | None = msgspec.field(
        default=None, name="sentry.interfaces.Exception"
    )
    old_message: _LogEntry | None = msgspec.field(default=None, name="sentry.interfaces.Message")


class _IssueEvent(_Event, frozen=True, kw_only=True):
    """An event that must name its issue (integration-platform event webhooks)."""

    issue_id: _Id


class _EventAlertData(_Wire, frozen=True, kw_only=True):
    event: _IssueEvent
    triggered_rule: str | None = None


class _EventAlertPayload(_Wire, frozen=True, kw_only=True):
    action: str = "triggered"
    data: _EventAlertData


class _ErrorData(_Wire, frozen=True, kw_only=True):
    error: _IssueEvent


class _ErrorPayload(_Wire, frozen=True, kw_only=True):
    action: str = "created"
    data: _ErrorData


class _Project(_Wire, frozen=True, kw_only=True):
    id: _Id | None = None
    name: str | None = None
    slug: str | None = None


class _IssueTag(_Wire, frozen=True, kw_only=True):
    key: str
    value: str | None = None


class _Issue(_Wire, frozen=True, kw_only=True):
    id: _Id
    title: str | None = None
    culprit: str | None = None
    level: str | None = None
    status: str | None = None
    substatus: str | None = None
    type: str | None = None
    issue_type: str | None = msgspec.field(default=None, name="issueType")
    issue_category: str | None = msgspec.field(default=None, name="issueCategory")
    is_unhandled: bool | None = msgspec.field(default=None, name="isUnhandled")
    user_count: int | None = msgspec.field(default=None, name="userCount")
    count: str | int | None = None
    first_seen: str | None = msgspec.field(default=None, name="firstSeen")
    last_seen: str | None = msgspec.field(default=None, name="lastSeen")
    is_regression: bool | None = msgspec.field(default=None, name="isRegression")
    is_regression_snake: bool | None = msgspec.field(default=None, name="is_regression")
    metadata: _Metadata | None = None
    project: _Project | None = None
    url: str | None = None
    web_url: str | None = None
    permalink: str | None = None
    tags: list[tuple[str, str] | _IssueTag] | None = None


class _IssueData(_Wire, frozen=True, kw_only=True):
    issue: _Issue


class _IssuePayload(_Wire, frozen=True, kw_only=True):
    action: str
    data: _IssueData


class _AlertRule(_Wire, frozen=True, kw_only=True):
    id: _Id
    name: str | None = None
    dataset: str | None = None
    environment: str | None = None
    projects: list[str] | None = None


class _MetricAlert(_Wire, frozen=True, kw_only=True):
    alert_rule: _AlertRule
    identifier: _Id
    id: _Id | None = None
    title: str | None = None
    projects: list[str] | None = None


class _MetricAlertData(_Wire, frozen=True, kw_only=True):
    metric_alert: _MetricAlert
    description_title: str | None = None
    description_text: str | None = None
    web_url: str | None = None


class _MetricAlertPayload(_Wire, frozen=True, kw_only=True):
    action: Literal["critical", "warning", "resolved"]
    data: _MetricAlertData


class _LegacyPayload(_Wire, frozen=True, kw_only=True):
    id: _Id
    project: str | None = None
    project_name: str | None = None
    project_slug: str | None = None
    logger: str | None = None
    level: str | None = None
    culprit: str | None = None
    message: str | None = None
    url: str | None = None
    triggering_rules: list[str] | None = None
    event: _Event | None = None


# --- public entry points --------------------------------------------------------------


def infer_resource(payload: Mapping[str, object]) -> str:
    """The resource of a payload that came without a ``Sentry-Hook-Resource`` header.

    ``legacy`` for the legacy WebHooks plugin's flat body; otherwise from ``data``:
    ``metric_alert``, ``event`` (with or without ``triggered_rule``) → ``event_alert``,
    ``issue``, ``error``. Raises :class:`MalformedPayloadError` when no shape fits.
    """
    data = payload.get("data")
    if (
        data is None
        and "id" in payload
        and any(k in payload for k in ("project", "project_name", "event", "culprit"))
    ):
        return "legacy"
    if isinstance(data, Mapping):
        if "metric_alert" in data:
            return "metric_alert"
        if "event" in data:
            return "event_alert"
        if "issue" in data:
            return "issue"
        if "error" in data:
            return "error"
        keys = ", ".join(sorted(str(k) for k in data)) or "nothing"
        raise MalformedPayloadError(
            "cannot tell the Sentry resource: data holds "
            f"{keys}, not event, metric_alert, issue or error"
        )
    raise MalformedPayloadError(
        "cannot tell the Sentry resource: no Sentry-Hook-Resource header, no data "
        "object and not a legacy webhook body (id, project, event)"
    )


def normalise(
    body: bytes,
    resource: str | None,
    *,
    tenant: str,
    signal_id: str,
    received_at: datetime,
    recognisers: Recognisers,
) -> Signal:
    """Decode one Sentry webhook body and normalise it to a :class:`Signal`.

    ``resource`` is the ``Sentry-Hook-Resource`` header (``None`` or empty: inferred
    from the body's shape). Raises :class:`MalformedPayloadError` naming what is wrong.
    """
    name = (resource or "").strip().lower()
    if not name:
        name = infer_resource(_decode_object(body))
    parse = _PARSERS.get(name)
    if parse is None:
        raise MalformedPayloadError(
            f"unsupported Sentry-Hook-Resource {resource!r}: EyeTok reads {', '.join(RESOURCES)}"
        )
    draft = parse(body)
    return Signal(
        signal_id=signal_id,
        tenant=tenant,
        source="sentry",
        resource=draft.resource,
        action=draft.action,
        kind=draft.kind,
        dedup_key=draft.dedup_key,
        title=draft.title,
        received_at=received_at,
        level=draft.level,
        message=draft.message,
        culprit=draft.culprit,
        url=draft.url,
        project=draft.project,
        environment=draft.environment,
        is_new=draft.is_new,
        is_regression=draft.is_regression,
        unhandled=draft.unhandled,
        users_affected=draft.users_affected,
        is_metric_alert=draft.is_metric_alert,
        is_performance=draft.is_performance,
        tags=draft.tags,
        marks=marks_for(
            recognisers,
            title=draft.title,
            message=draft.message,
            tags=draft.tags,
            issue_type=draft.issue_type,
            issue_category=draft.issue_category,
        ),
    )


# --- one parser per resource ----------------------------------------------------------


def _parse_event_alert(body: bytes) -> Draft:
    payload = _decode(body, _EventAlertPayload, "event_alert")
    rules = [payload.data.triggered_rule or ""]
    return event_draft(
        "event_alert",
        payload.action,
        payload.data.event,
        payload.data.event.issue_id,
        rules,
    )


def _parse_error(body: bytes) -> Draft:
    payload = _decode(body, _ErrorPayload, "error")
    error = payload.data.error
    return event_draft("error", payload.action, error, error.issue_id, rules=())


def _parse_legacy(body: bytes) -> Draft:
    payload = _decode(body, _LegacyPayload, "legacy")
    event = payload.event or _Event()
    draft = event_draft("legacy", "triggered", event, payload.id, payload.triggering_rules or ())
    return msgspec.structs.replace(
        draft,
        level=level(payload.level) if payload.level else draft.level,
        title=first(event.title, metadata_title(event.metadata), payload.message) or draft.title,
        message=first(payload.message, draft.message),
        culprit=first(payload.culprit, draft.culprit),
        url=first(payload.url, draft.url),
        project=first(payload.project_slug, payload.project, draft.project),
    )


def _parse_issue(body: bytes) -> Draft:
    payload = _decode(body, _IssuePayload, "issue")
    issue = payload.data.issue
    action = payload.action
    tags = issue_tags(issue.tags)
    category = (issue.issue_category or "").lower()
    is_new, is_regression = issue_novelty(action, issue)
    performance = (
        category == "performance"
        or (issue.issue_type or "").startswith("performance_")
        or issue.type == "transaction"
    )
    return Draft(
        resource="issue",
        action=action,
        kind=SignalKind.RESOLVE if action in _RESOLVING_ISSUE_ACTIONS else SignalKind.ALERT,
        dedup_key=str(issue.id),
        title=first(issue.title, metadata_title(issue.metadata)) or f"Sentry issue {issue.id}",
        level=performance_level(level(issue.level), performance),
        message=first(issue.metadata.value if issue.metadata else None),
        culprit=first(issue.culprit),
        url=first(issue.web_url, issue.permalink, issue.url),
        project=first(issue.project.slug if issue.project else None),
        environment=tag(tags, "environment"),
        is_new=is_new,
        is_regression=is_regression,
        unhandled=issue.is_unhandled if issue.is_unhandled is not None else unhandled_by_tags(tags),
        users_affected=issue.user_count,
        is_performance=performance,
        tags=tags,
        issue_type=(issue.issue_type or "").lower(),
        issue_category=category,
    )


def _parse_metric_alert(body: bytes) -> Draft:
    payload = _decode(body, _MetricAlertPayload, "metric_alert")
    data = payload.data
    incident = data.metric_alert
    rule = incident.alert_rule
    projects = rule.projects or incident.projects or []
    return Draft(
        resource="metric_alert",
        action=payload.action,
        kind=SignalKind.RESOLVE if payload.action == "resolved" else SignalKind.ALERT,
        dedup_key=f"metric:{rule.id}:{incident.identifier}",
        title=first(data.description_title, rule.name, incident.title)
        or f"Sentry metric alert {rule.id}",
        level=_METRIC_LEVELS[payload.action],
        message=first(data.description_text),
        url=first(data.web_url),
        project=",".join(projects),
        environment=first(rule.environment),
        is_metric_alert=True,
        is_performance=(rule.dataset or "") in _PERFORMANCE_DATASETS,
    )


_PARSERS: dict[str, Callable[[bytes], Draft]] = {
    "event_alert": _parse_event_alert,
    "metric_alert": _parse_metric_alert,
    "issue": _parse_issue,
    "error": _parse_error,
    "legacy": _parse_legacy,
}


# --- decoding and its errors ----------------------------------------------------------

_S = TypeVar("_S")
_AT_PATH = re.compile(r"^(?P<problem>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")


def _decode(body: bytes, shape: type[_S], resource: str) -> _S:
    decoded: _S = decode_json(body, shape, f"{resource} webhook", invalid=_validation_message)
    return decoded


def _decode_object(body: bytes) -> Mapping[str, object]:
    """The body as a plain mapping, only to infer its resource."""
    return _decode(body, dict[str, object], "sentry")


def _validation_message(what: str, text: str) -> str:
    match = _AT_PATH.match(text)
    problem, path = (match["problem"], match["path"]) if match else (text, "$")
    prefix = f"{what}:"
    if missing := _MISSING.match(problem):
        where = path.removeprefix("$").lstrip(".")
        dotted = f"{where}.{missing['field']}" if where else missing["field"]
        return f"{prefix} {dotted} is missing"
    if expected := _EXPECTED.match(problem):
        return f"{prefix} expected {expected['want']} for {path}, got {expected['got']}"
    if enum := _ENUM.match(problem):
        return f"{prefix} unexpected value {enum['value']} for {path}"
    return f"{prefix} {problem[:1].lower()}{problem[1:]} at {path}"
