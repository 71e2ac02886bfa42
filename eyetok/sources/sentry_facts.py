"""What a decoded Sentry webhook says, as the facts of a Signal (the judgment half).

:mod:`eyetok.sources.sentry` decodes the five wire shapes; this module derives, from
them, the facts the severity rules read. The choices the payloads leave open:

* ``dedup_key``: the Sentry issue id as a string (``data.event.issue_id``,
  ``data.error.issue_id``, ``data.issue.id``, legacy ``id``); metric alerts use
  ``metric:<alert_rule.id>:<identifier>`` so critical, warning and resolved of one
  incident share a key (a later trigger of the same incident is an update).
* ``kind``: RESOLVE for issue ``resolved``/``ignored``/``archived`` and metric alert
  ``resolved``; everything else is an ALERT.
* ``level``: the event's or issue's level, lower-cased (``critical`` read as
  ``fatal``, ``warn`` as ``warning``, missing as ``error``). Metric alerts have no
  level, and the trigger that fired is not one: ``critical`` and ``warning`` both give
  ``error`` (a performance alert either way; the table's warning row is Sentry's
  event level), ``resolved`` gives ``info``. Likewise a performance issue or a
  transaction event is a performance alert: its level (Sentry files most at ``info``)
  reads as ``error`` unless it is ``fatal``.
* ``is_new``: whether the *payload* says the issue is new: ``True`` for an issue
  ``created`` action, an explicit boolean ``is_new``/``isNew`` on an event (not part
  of Sentry's documented payload; honoured when a relay or a drill adds it) or a
  fired rule label (``triggered_rule``, legacy ``triggering_rules``) that mentions
  "new issue", as Sentry's default first-seen rule does. ``False`` when the payload
  says it was seen before: a regression (below), an explicit ``is_new: false``, or
  an issue resource whose action is not ``created`` and whose history shows earlier
  sightings (substatus ``ongoing``/``escalating``/``regressed``, ``count`` above 1,
  or ``firstSeen`` before ``lastSeen``). ``None`` otherwise: unknown, and EyeTok
  decides (new when it has no open or recently resolved incident for the key).
* ``is_regression``: issue ``unresolved`` or substatus ``regressed``; an explicit
  boolean ``is_regression``/``isRegression``; a rule label mentioning "regress".
* ``unhandled``: True when any exception of the chain (``exception.values``) has
  ``mechanism.handled: false`` or an unhandled mechanism type
  (``onunhandledrejection``, ``onuncaughtexception``, ``onerror``) with no flag;
  False when only ``handled: true`` flags are seen; else the ``handled`` tag
  (``no``/``yes``) or a ``mechanism`` tag naming an unhandled mechanism; issues read
  ``isUnhandled`` first. None when nothing says.
* ``users_affected``: issue ``userCount``; 1 for an event with a non-empty ``user``
  (or a ``user``/``sentry:user`` tag); None when unknown.
* ``project``: events carry only the numeric project id, so the slug is read from the
  event's API ``url`` (``/api/0/projects/<org>/<slug>/events/...``), falling back to
  the id; issues use ``project.slug``; metric alerts join ``alert_rule.projects``.
* ``environment``: the event's ``environment``, else its ``environment`` tag; an
  issue's ``environment`` tag; the alert rule's ``environment`` for metric alerts.
* ``is_performance``: issue category ``performance`` (or an issue type starting with
  ``performance_``), an event of type ``transaction``, a metric alert on a
  performance dataset.
* ``issue_type``/``issue_category``: an issue's ``issueType``/``issueCategory``, for
  the recognisers (Sentry Uptime's ``uptime_domain_failure`` is a synthetic check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from eyetok.messages import SignalKind

if TYPE_CHECKING:
    from eyetok.sources.sentry import (
        _Event,
        _ExceptionInterface,
        _Id,
        _Issue,
        _IssueTag,
        _Metadata,
    )

__all__ = ["Draft", "event_draft", "first", "issue_novelty", "level", "metadata_title"]

_LEVEL_ALIASES = {"critical": "fatal", "warn": "warning"}
_NEW_ISSUE_RULE_WORDS = ("new issue",)
_REGRESSION_RULE_WORDS = ("regress",)
_SEEN_BEFORE_SUBSTATUSES = frozenset({"ongoing", "escalating", "regressed"})
_UNHANDLED_MECHANISMS = frozenset({"onunhandledrejection", "onuncaughtexception", "onerror"})
_PROJECT_IN_EVENT_URL = re.compile(r"/projects/[^/]+/(?P<slug>[^/]+)/events/")


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """The source-specific half of a Signal."""

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
    is_new: bool | None = None
    is_regression: bool = False
    unhandled: bool | None = None
    users_affected: int | None = None
    is_metric_alert: bool = False
    is_performance: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    issue_type: str = ""
    issue_category: str = ""


def event_draft(
    resource: str,
    action: str,
    event: _Event,
    issue_id: _Id,
    rules: Iterable[str],
) -> Draft:
    """The facts of an event payload (``event_alert``, ``error``, legacy)."""
    tags = tuple((k, v) for k, v in event.tags or ())
    rule_text = " | ".join(rules).casefold()
    message = first(
        event.message,
        event.logentry.formatted if event.logentry else None,
        event.logentry.message if event.logentry else None,
        event.old_message.formatted if event.old_message else None,
        event.old_message.message if event.old_message else None,
    )
    regression = (
        event.is_regression is True
        or event.is_regression_camel is True
        or any(map(rule_text.__contains__, _REGRESSION_RULE_WORDS))
    )
    performance = event.type == "transaction"
    said_new = event.is_new if event.is_new is not None else event.is_new_camel
    if regression:
        is_new: bool | None = False
    elif said_new is not None:
        is_new = said_new
    else:
        is_new = True if any(map(rule_text.__contains__, _NEW_ISSUE_RULE_WORDS)) else None
    return Draft(
        resource=resource,
        action=action,
        kind=SignalKind.ALERT,
        dedup_key=str(issue_id),
        title=first(event.title, metadata_title(event.metadata), message)
        or f"Sentry issue {issue_id}",
        level=performance_level(level(event.level or tag(tags, "level")), performance),
        message=message,
        culprit=first(event.culprit),
        url=first(event.web_url, event.issue_url, event.url),
        project=event_project(event),
        environment=first(event.environment, tag(tags, "environment")),
        is_new=is_new,
        is_regression=regression,
        unhandled=unhandled(event.exception or event.old_exception, tags),
        users_affected=users_affected(event.user or event.old_user, tags),
        is_performance=performance,
        tags=tags,
    )


def issue_novelty(action: str, issue: _Issue) -> tuple[bool | None, bool]:
    """(is_new, is_regression) as an issue webhook says them."""
    substatus = (issue.substatus or "").lower()
    regression = (
        action == "unresolved"
        or substatus == "regressed"
        or issue.is_regression is True
        or issue.is_regression_snake is True
    )
    if regression:
        return False, True
    if action == "created":
        return True, False
    seen_before = (
        substatus in _SEEN_BEFORE_SUBSTATUSES
        or _count(issue.count) > 1
        or _earlier(issue.first_seen, issue.last_seen)
    )
    return (False if seen_before else None), False


def _earlier(first_seen: str | None, last_seen: str | None) -> bool:
    try:
        return datetime.fromisoformat(first_seen or "") < datetime.fromisoformat(last_seen or "")
    except (ValueError, TypeError):
        return False


def _count(raw: str | int | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def unhandled(
    exception: _ExceptionInterface | None, tags: Iterable[tuple[str, str]]
) -> bool | None:
    """Whether the error went unhandled: any exception of the chain says so wins."""
    flags: list[bool] = []
    for value in (exception.values if exception else None) or ():
        mechanism = value.mechanism
        if mechanism is None:
            continue
        if mechanism.handled is not None:
            flags.append(not mechanism.handled)
        elif (mechanism.type or "").lower() in _UNHANDLED_MECHANISMS:
            flags.append(True)
    if flags:
        return any(flags)
    return unhandled_by_tags(tags)


def unhandled_by_tags(tags: Iterable[tuple[str, str]]) -> bool | None:
    pairs = tags if isinstance(tags, tuple) else tuple(tags)
    handled = tag(pairs, "handled").lower()
    if handled in ("no", "false"):
        return True
    if tag(pairs, "mechanism").lower() in _UNHANDLED_MECHANISMS:
        return True
    if handled in ("yes", "true"):
        return False
    return None


def users_affected(
    user: Mapping[str, object] | None, tags: Iterable[tuple[str, str]]
) -> int | None:
    if user and any(v not in (None, "", {}) for v in user.values()):
        return 1
    pairs = tags if isinstance(tags, tuple) else tuple(tags)
    if tag(pairs, "user") or tag(pairs, "sentry:user"):
        return 1
    return None


def event_project(event: _Event) -> str:
    for url in (event.url, event.issue_url):
        match = _PROJECT_IN_EVENT_URL.search(url or "")
        if match:
            return match.group("slug")
    return "" if event.project is None else str(event.project)


def issue_tags(tags: list[tuple[str, str] | _IssueTag] | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in tags or ():
        if isinstance(item, tuple):
            pairs.append((item[0], item[1]))
        elif item.value is not None:
            pairs.append((item.key, item.value))
    return tuple(pairs)


def tag(tags: Iterable[tuple[str, str]], key: str) -> str:
    """The value of the first tag named ``key`` ("" when none is)."""
    for k, v in tags:  # a loop, not next() over a generator: run several times per event
        if k == key:
            return v
    return ""


def level(raw: str | None) -> str:
    name = (raw or "error").strip().lower() or "error"
    return _LEVEL_ALIASES.get(name, name)


def metadata_title(metadata: _Metadata | None) -> str:
    if metadata is None:
        return ""
    if metadata.title:
        return metadata.title
    if metadata.type and metadata.value:
        return f"{metadata.type}: {metadata.value}"
    return metadata.type or metadata.value or ""


def performance_level(name: str, performance: bool) -> str:
    """A performance alert's level: ``error`` unless ``fatal`` (its level is no event's)."""
    return "error" if performance and name != "fatal" else name


def first(*values: str | None) -> str:
    """The first value that is not None or empty ("" when none is)."""
    for value in values:
        if value:
            return value
    return ""
