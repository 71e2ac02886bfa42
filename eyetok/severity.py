"""The canonical severity table of ADR-0091, shipped as data.

An ordered list of named rules; the first whose condition matches a signal decides its
severity. Cases the table does not name fall to the named ``default`` rule (medium),
never to an exception. :func:`classify` then picks the SEV channel by business hours.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from eyetok.business_hours import ET_BUSINESS_HOURS, BusinessWindow, is_business_hours
from eyetok.messages import Routing, SevChannel, Severity, Signal


class Condition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Facts a signal must show; every field that is set must hold (``any_of``: one of)."""

    levels: frozenset[str] | None = None
    marks: frozenset[str] | None = None  # any of these recogniser marks
    is_new: bool | None = None
    unhandled: bool | None = None
    environments: frozenset[str] | None = None
    min_users: int | None = None
    is_regression: bool | None = None
    is_metric_alert: bool | None = None
    is_performance: bool | None = None
    any_of: tuple[Condition, ...] | None = None

    def holds(self, signal: Signal) -> bool:
        if self.levels is not None and signal.level not in self.levels:
            return False
        if self.marks is not None and not (self.marks & signal.marks):
            return False
        if self.is_new is not None and signal.is_new != self.is_new:
            return False
        if self.unhandled is not None and signal.unhandled != self.unhandled:
            return False
        if self.environments is not None and signal.environment.lower() not in self.environments:
            return False
        if self.min_users is not None and (signal.users_affected or 0) < self.min_users:
            return False
        if self.is_regression is not None and signal.is_regression != self.is_regression:
            return False
        if self.is_metric_alert is not None and signal.is_metric_alert != self.is_metric_alert:
            return False
        if self.is_performance is not None and signal.is_performance != self.is_performance:
            return False
        return self.any_of is None or any(c.holds(signal) for c in self.any_of)


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    severity: Severity
    when: Condition


DEFAULT_RULE = Rule(name="default", severity=Severity.MEDIUM, when=Condition())

CANONICAL_RULES: tuple[Rule, ...] = (
    Rule(name="fatal", severity=Severity.CRITICAL, when=Condition(levels=frozenset({"fatal"}))),
    Rule(
        name="paper-gate-breach",
        severity=Severity.CRITICAL,
        when=Condition(marks=frozenset({"paper_gate"})),
    ),
    Rule(name="heroku-h12", severity=Severity.HIGH, when=Condition(marks=frozenset({"h12"}))),
    Rule(
        name="synthetic-check-failure",
        severity=Severity.HIGH,
        when=Condition(marks=frozenset({"synthetic_check"})),
    ),
    Rule(
        name="declared-high",
        severity=Severity.HIGH,
        when=Condition(marks=frozenset({"declared_high"})),
    ),
    Rule(
        name="info-debug-audit",
        severity=Severity.INFO,
        when=Condition(levels=frozenset({"info", "debug"})),
    ),
    Rule(
        name="error-new-unhandled-production",
        severity=Severity.HIGH,
        when=Condition(
            levels=frozenset({"error"}),
            is_new=True,
            unhandled=True,
            environments=frozenset({"production", "prod"}),
            min_users=1,
        ),
    ),
    Rule(
        name="error-regression-or-performance",
        severity=Severity.MEDIUM,
        when=Condition(
            levels=frozenset({"error"}),
            any_of=(
                Condition(is_regression=True),
                Condition(is_performance=True),
                Condition(is_metric_alert=True),
            ),
        ),
    ),
    Rule(name="warning", severity=Severity.LOW, when=Condition(levels=frozenset({"warning"}))),
)


def match_rule(signal: Signal, rules: tuple[Rule, ...] = CANONICAL_RULES) -> Rule:
    """The first rule whose condition holds, else :data:`DEFAULT_RULE`."""
    for rule in rules:
        if rule.when.holds(signal):
            return rule
    return DEFAULT_RULE


def sev_channel_for(
    severity: Severity, at: datetime, window: BusinessWindow = ET_BUSINESS_HOURS
) -> tuple[SevChannel | None, bool]:
    """The loudness for ``severity`` at instant ``at``, and whether ``at`` is business hours."""
    business = is_business_hours(at, window)
    match severity:
        case Severity.CRITICAL:
            return SevChannel.SEV1, business
        case Severity.HIGH:
            return (SevChannel.SEV2_5 if business else SevChannel.SEV2), business
        case Severity.MEDIUM | Severity.LOW:
            return SevChannel.SEV3, business
        case Severity.INFO:
            return None, business


def classify(
    signal: Signal,
    *,
    rules: tuple[Rule, ...] = CANONICAL_RULES,
    window: BusinessWindow = ET_BUSINESS_HOURS,
) -> Routing:
    """Severity, matched rule and SEV channel for a signal, at the time it was received."""
    rule = match_rule(signal, rules)
    channel, business = sev_channel_for(rule.severity, signal.received_at, window)
    return Routing(
        severity=rule.severity, rule=rule.name, sev_channel=channel, business_hours=business
    )
