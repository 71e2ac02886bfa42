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

How the Signal fields are derived (the choices the payloads leave open):

* ``dedup_key``: the Sentry issue id as a string (``data.event.issue_id``,
  ``data.error.issue_id``, ``data.issue.id``, legacy ``id``); metric alerts use
  ``metric:<alert_rule.id>:<identifier>`` so critical, warning and resolved of one
  incident share a key.
* ``kind``: RESOLVE for issue ``resolved``/``ignored``/``archived`` and metric alert
  ``resolved``; everything else is an ALERT.
* ``level``: the event's or issue's level, lower-cased (``critical`` read as
  ``fatal``, ``warn`` as ``warning``, missing as ``error``). Metric alerts have no
  level: ``critical`` gives ``error``, ``warning`` gives ``warning``, ``resolved``
  gives ``info``.
* ``is_new``: issue webhooks: the action is ``created``. Event payloads
  (``event_alert``, ``error``, ``legacy``) do not say whether the issue is new, so an
  event counts as new when it carries an explicit boolean ``is_new`` (not part of
  Sentry's documented payload; honoured when a relay or a drill adds it) or when the
  label of the rule that fired (``triggered_rule``, legacy ``triggering_rules``)
  mentions "new issue", as Sentry's default first-seen rule ("Send a notification for
  new issues") does. Name the rule accordingly in Sentry. ``error`` webhooks fire on
  every event, so they count as new only by the explicit flag.
* ``is_regression``: issue ``unresolved``; for events an explicit boolean
  ``is_regression`` or a rule label mentioning "regress".
* ``unhandled``: any ``exception.values[].mechanism.handled`` false gives True, only
  true flags give False; else the ``handled`` tag (``no``/``yes``); issues read
  ``isUnhandled``; None when nothing says.
* ``users_affected``: issue ``userCount``; 1 for an event with a non-empty ``user``
  (or a ``user``/``sentry:user`` tag); None when unknown.
* ``project``: events carry only the numeric project id, so the slug is read from the
  event's API ``url`` (``/api/0/projects/<org>/<slug>/events/...``), falling back to
  the id; issues use ``project.slug``; metric alerts join ``alert_rule.projects``.
* ``environment``: the event's ``environment``, else its ``environment`` tag; the
  alert rule's ``environment`` for metric alerts.
* ``is_performance``: issue category ``performance`` (or an issue type starting with
  ``performance_``), an event of type ``transaction``, a metric alert on a
  performance dataset (``transactions``, ``generic_metrics``, ``spans``,
  ``events_analytics_platform``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Literal, TypeVar

import msgspec

from eyetok.decoding import decode_json
from eyetok.errors import MalformedPayloadError
from eyetok.messages import Signal, SignalKind
from eyetok.recognisers import Recognisers, marks_for

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
_METRIC_LEVELS = {"critical": "error", "warning": "warning", "resolved": "info"}
_LEVEL_ALIASES = {"critical": "fatal", "warn": "warning"}
_PERFORMANCE_DATASETS = frozenset(
    {"transactions", "generic_metrics", "spans", "events_analytics_platform"}
)
_NEW_ISSUE_RULE_WORDS = ("new issue",)
_REGRESSION_RULE_WORDS = ("regress",)
_PROJECT_IN_EVENT_URL = re.compile(r"/projects/[^/]+/(?P<slug>[^/]+)/events/")


# --- signature ------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """The ``Sentry-Hook-Signature`` Sentry sends: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


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
    is_regression: bool | None = None
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


# --- the source-specific half of a Signal ---------------------------------------------


class _Draft(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    action: str
    kind: SignalKind
    dedup_key: str
    title: str
    level: str
    message: str = ""
    culprit: str = ""
    url: str = ""
    project: str = ""
    environment: str = ""
    is_new: bool = False
    is_regression: bool = False
    unhandled: bool | None = None
    users_affected: int | None = None
    is_metric_alert: bool = False
    is_performance: bool = False
    tags: tuple[tuple[str, str], ...] = ()


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
        marks=marks_for(recognisers, title=draft.title, message=draft.message, tags=draft.tags),
    )


# --- one parser per resource ----------------------------------------------------------


def _parse_event_alert(body: bytes) -> _Draft:
    payload = _decode(body, _EventAlertPayload, "event_alert")
    rules = [payload.data.triggered_rule or ""]
    return _event_draft(
        "event_alert",
        payload.action,
        payload.data.event,
        payload.data.event.issue_id,
        rules,
    )


def _parse_error(body: bytes) -> _Draft:
    payload = _decode(body, _ErrorPayload, "error")
    error = payload.data.error
    return _event_draft("error", payload.action, error, error.issue_id, rules=())


def _parse_legacy(body: bytes) -> _Draft:
    payload = _decode(body, _LegacyPayload, "legacy")
    event = payload.event or _Event()
    draft = _event_draft("legacy", "triggered", event, payload.id, payload.triggering_rules or ())
    return msgspec.structs.replace(
        draft,
        level=_level(payload.level) if payload.level else draft.level,
        title=_first(event.title, _metadata_title(event.metadata), payload.message) or draft.title,
        message=_first(payload.message, draft.message),
        culprit=_first(payload.culprit, draft.culprit),
        url=_first(payload.url, draft.url),
        project=_first(payload.project_slug, payload.project, draft.project),
    )


def _parse_issue(body: bytes) -> _Draft:
    payload = _decode(body, _IssuePayload, "issue")
    issue = payload.data.issue
    action = payload.action
    tags = _issue_tags(issue.tags)
    category = (issue.issue_category or "").lower()
    return _Draft(
        resource="issue",
        action=action,
        kind=SignalKind.RESOLVE if action in _RESOLVING_ISSUE_ACTIONS else SignalKind.ALERT,
        dedup_key=str(issue.id),
        title=_first(issue.title, _metadata_title(issue.metadata)) or f"Sentry issue {issue.id}",
        level=_level(issue.level),
        message=_first(issue.metadata.value if issue.metadata else None),
        culprit=_first(issue.culprit),
        url=_first(issue.web_url, issue.permalink, issue.url),
        project=_first(issue.project.slug if issue.project else None),
        environment=_tag(tags, "environment"),
        is_new=action == "created",
        is_regression=action == "unresolved",
        unhandled=issue.is_unhandled,
        users_affected=issue.user_count,
        is_performance=category == "performance"
        or (issue.issue_type or "").startswith("performance_")
        or issue.type == "transaction",
        tags=tags,
    )


def _parse_metric_alert(body: bytes) -> _Draft:
    payload = _decode(body, _MetricAlertPayload, "metric_alert")
    data = payload.data
    incident = data.metric_alert
    rule = incident.alert_rule
    projects = rule.projects or incident.projects or []
    return _Draft(
        resource="metric_alert",
        action=payload.action,
        kind=SignalKind.RESOLVE if payload.action == "resolved" else SignalKind.ALERT,
        dedup_key=f"metric:{rule.id}:{incident.identifier}",
        title=_first(data.description_title, rule.name, incident.title)
        or f"Sentry metric alert {rule.id}",
        level=_METRIC_LEVELS[payload.action],
        message=_first(data.description_text),
        url=_first(data.web_url),
        project=",".join(projects),
        environment=_first(rule.environment),
        is_metric_alert=True,
        is_performance=(rule.dataset or "") in _PERFORMANCE_DATASETS,
    )


_PARSERS: dict[str, Callable[[bytes], _Draft]] = {
    "event_alert": _parse_event_alert,
    "metric_alert": _parse_metric_alert,
    "issue": _parse_issue,
    "error": _parse_error,
    "legacy": _parse_legacy,
}


# --- shared event reading -------------------------------------------------------------


def _event_draft(
    resource: str,
    action: str,
    event: _Event,
    issue_id: _Id,
    rules: Iterable[str],
) -> _Draft:
    tags = tuple((k, v) for k, v in event.tags or ())
    rule_text = " | ".join(rules).casefold()
    message = _first(
        event.message,
        event.logentry.formatted if event.logentry else None,
        event.logentry.message if event.logentry else None,
        event.old_message.formatted if event.old_message else None,
        event.old_message.message if event.old_message else None,
    )
    return _Draft(
        resource=resource,
        action=action,
        kind=SignalKind.ALERT,
        dedup_key=str(issue_id),
        title=_first(event.title, _metadata_title(event.metadata), message)
        or f"Sentry issue {issue_id}",
        level=_level(event.level or _tag(tags, "level")),
        message=message,
        culprit=_first(event.culprit),
        url=_first(event.web_url, event.issue_url, event.url),
        project=_event_project(event),
        environment=_first(event.environment, _tag(tags, "environment")),
        is_new=event.is_new is True or any(w in rule_text for w in _NEW_ISSUE_RULE_WORDS),
        is_regression=event.is_regression is True
        or any(w in rule_text for w in _REGRESSION_RULE_WORDS),
        unhandled=_unhandled(event.exception or event.old_exception, tags),
        users_affected=_users_affected(event.user or event.old_user, tags),
        is_performance=event.type == "transaction",
        tags=tags,
    )


def _unhandled(
    exception: _ExceptionInterface | None, tags: tuple[tuple[str, str], ...]
) -> bool | None:
    flags: list[bool] = []
    for value in (exception.values if exception else None) or ():
        if value.mechanism is not None and value.mechanism.handled is not None:
            flags.append(value.mechanism.handled)
    if flags:
        return not all(flags)
    handled = _tag(tags, "handled").lower()
    if handled in ("no", "false"):
        return True
    if handled in ("yes", "true"):
        return False
    return None


def _users_affected(
    user: Mapping[str, object] | None, tags: tuple[tuple[str, str], ...]
) -> int | None:
    if user and any(v not in (None, "", {}) for v in user.values()):
        return 1
    if _tag(tags, "user") or _tag(tags, "sentry:user"):
        return 1
    return None


def _event_project(event: _Event) -> str:
    for url in (event.url, event.issue_url):
        match = _PROJECT_IN_EVENT_URL.search(url or "")
        if match:
            return match.group("slug")
    return "" if event.project is None else str(event.project)


def _issue_tags(
    tags: list[tuple[str, str] | _IssueTag] | None,
) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for tag in tags or ():
        if isinstance(tag, _IssueTag):
            if tag.value is not None:
                pairs.append((tag.key, tag.value))
        else:
            pairs.append((tag[0], tag[1]))
    return tuple(pairs)


def _tag(tags: Iterable[tuple[str, str]], key: str) -> str:
    return next((v for k, v in tags if k == key), "")


def _level(raw: str | None) -> str:
    level = (raw or "error").strip().lower() or "error"
    return _LEVEL_ALIASES.get(level, level)


def _metadata_title(metadata: _Metadata | None) -> str:
    if metadata is None:
        return ""
    if metadata.title:
        return metadata.title
    if metadata.type and metadata.value:
        return f"{metadata.type}: {metadata.value}"
    return metadata.type or metadata.value or ""


def _first(*values: str | None) -> str:
    return next((v for v in values if v), "")


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
