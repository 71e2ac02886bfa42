"""The canonical severity table of ADR-0091, shipped as data.

An ordered list of named rules; the first whose condition holds for a signal's
:class:`Facts` decides its severity. Cases the table does not name fall to the named
``default`` rule (medium), never to an exception. :func:`classify` then picks the SEV
channel by business hours, and :func:`why` says which rule matched, which of its
conditions held, and, for every louder rule above it, the first condition that failed.

The rules read facts, not payloads. One fact is EyeTok's own: whether it already knows
the signal's issue (an open or recently resolved incident with the same key). A signal
whose payload does not say whether its issue is new (``Signal.is_new`` is ``None``) is
new exactly when EyeTok does not know it; the caller that owns the incidents passes
``known``, so the daemon and ``eyetok replay --explain`` judge alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import msgspec

from eyetok.business_hours import ET_BUSINESS_HOURS, BusinessWindow, is_business_hours
from eyetok.messages import Routing, SevChannel, Severity, Signal, SignalKind

_LOUDNESS = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules read: a signal's facts plus whether its issue is new, decided."""

    resolves: bool
    level: str
    marks: frozenset[str]
    is_new: bool
    novelty: str  # why ``is_new`` is what it is, in words
    unhandled: bool | None
    environment: str
    users_affected: int | None
    is_regression: bool
    is_metric_alert: bool
    is_performance: bool


def facts_of(signal: Signal, *, known: bool = False) -> Facts:
    """The facts of ``signal``; ``known``: EyeTok has an open or recently resolved
    incident for its key."""
    if signal.is_regression:
        is_new, novelty = False, "a regression (the payload says so)"
    elif signal.is_new is True:
        is_new, novelty = True, "new (the payload says so)"
    elif signal.is_new is False:
        is_new, novelty = False, "seen before (the payload says so)"
    elif known:
        is_new, novelty = False, "known to EyeTok (an open or recently resolved incident)"
    else:
        is_new, novelty = True, "new to EyeTok"
    return Facts(
        resolves=signal.kind is SignalKind.RESOLVE,
        level=signal.level,
        marks=signal.marks,
        is_new=is_new,
        novelty=novelty,
        unhandled=signal.unhandled,
        environment=signal.environment,
        users_affected=signal.users_affected,
        is_regression=signal.is_regression,
        is_metric_alert=signal.is_metric_alert,
        is_performance=signal.is_performance,
    )


class Condition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Facts a signal must show; every field that is set must hold (``any_of``: one of)."""

    resolves: bool | None = None
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

    def holds(self, facts: Facts) -> bool:
        """What :meth:`checks` says of every field, without putting the facts in words
        (every signal is classified by this; only an explanation needs the words)."""
        f = facts
        return (
            (self.resolves is None or f.resolves == self.resolves)
            and (self.levels is None or f.level in self.levels)
            and (self.marks is None or not self.marks.isdisjoint(f.marks))
            and (self.is_new is None or f.is_new == self.is_new)
            and (self.unhandled is None or f.unhandled == self.unhandled)
            and (self.environments is None or f.environment.lower() in self.environments)
            and (self.min_users is None or (f.users_affected or 0) >= self.min_users)
            and (self.is_regression is None or f.is_regression == self.is_regression)
            and (self.is_metric_alert is None or f.is_metric_alert == self.is_metric_alert)
            and (self.is_performance is None or f.is_performance == self.is_performance)
            and (self.any_of is None or any(option.holds(facts) for option in self.any_of))
        )

    def checks(self, facts: Facts) -> Iterator[tuple[bool, str]]:
        """Each set field, in order: whether it holds, and the fact it read, in words."""
        f = facts
        if self.resolves is not None:
            yield f.resolves == self.resolves, "a resolve" if f.resolves else "not a resolve"
        if self.levels is not None:
            yield f.level in self.levels, f"level is {_quoted(f.level)}"
        if self.marks is not None:
            found = sorted(self.marks & f.marks)
            wanted = " or ".join(sorted(self.marks))
            yield bool(found), f"recognised as {found[0]}" if found else f"not {wanted}"
        if self.is_new is not None:
            yield f.is_new == self.is_new, f.novelty
        if self.unhandled is not None:
            said = {True: "unhandled", False: "handled", None: "handled or not: unknown"}
            yield f.unhandled == self.unhandled, said[f.unhandled]
        if self.environments is not None:
            env = f.environment.lower()
            yield env in self.environments, f"environment is {_quoted(f.environment)}"
        if self.min_users is not None:
            users = f.users_affected
            text = (
                "users affected: unknown"
                if users is None
                else f"{users} user{'' if users == 1 else 's'} affected"
            )
            yield (users or 0) >= self.min_users, text
        if self.is_regression is not None:
            text = "a regression" if f.is_regression else "not a regression"
            yield f.is_regression == self.is_regression, text
        if self.is_metric_alert is not None:
            text = "a metric alert" if f.is_metric_alert else "not a metric alert"
            yield f.is_metric_alert == self.is_metric_alert, text
        if self.is_performance is not None:
            text = "a performance issue" if f.is_performance else "not a performance issue"
            yield f.is_performance == self.is_performance, text
        if self.any_of is not None:
            for option in self.any_of:
                checks = list(option.checks(facts))
                if all(ok for ok, _ in checks):
                    yield True, ", ".join(text for _, text in checks)
                    return
            failures = (_first_failure(option, facts) for option in self.any_of)
            yield False, "none of: " + "; ".join(text for text in failures if text)


def _first_failure(condition: Condition, facts: Facts) -> str | None:
    return next((text for ok, text in condition.checks(facts) if not ok), None)


def _quoted(value: str) -> str:
    return msgspec.json.encode(value).decode() if value else "not given"


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    severity: Severity
    when: Condition


def _marked(mark: str) -> Condition:
    return Condition(marks=frozenset({mark}))


DEFAULT_RULE = Rule(name="default", severity=Severity.MEDIUM, when=Condition())

CANONICAL_RULES: tuple[Rule, ...] = (
    # A resolve says a problem is over; its incident (if any) decides where it goes.
    Rule(name="resolve", severity=Severity.INFO, when=Condition(resolves=True)),
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
    # Heroku's router and dyno errors, as a log drain reports them (a drain signal carries
    # one mark, so their place after the marks above only orders ``why``'s answer)
    Rule(name="heroku-h10", severity=Severity.CRITICAL, when=_marked("heroku_h10")),
    Rule(name="heroku-r15", severity=Severity.CRITICAL, when=_marked("heroku_r15")),
    Rule(name="heroku-crashed", severity=Severity.HIGH, when=_marked("heroku_crashed")),
    Rule(name="heroku-r14", severity=Severity.MEDIUM, when=_marked("heroku_r14")),
    Rule(name="heroku-h13", severity=Severity.MEDIUM, when=_marked("heroku_h13")),
    Rule(name="heroku-h18", severity=Severity.MEDIUM, when=_marked("heroku_h18")),
    Rule(name="heroku-h27", severity=Severity.LOW, when=_marked("heroku_h27")),
    Rule(name="heroku-h28", severity=Severity.LOW, when=_marked("heroku_h28")),
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


def match_rule(facts: Facts, rules: tuple[Rule, ...] = CANONICAL_RULES) -> Rule:
    """The first rule whose condition holds, else :data:`DEFAULT_RULE`."""
    for rule in rules:
        if rule.when.holds(facts):
            return rule
    return DEFAULT_RULE


# What :func:`classify` decided for each combination of the facts the rules read, per
# rule table (a table is immutable: the answer for the same facts never changes). The
# signals of a batch repeat a few combinations; one look-up replaces a pass over the
# table (about 1.5 us a signal, microbench). Bounded: a table's answers are forgotten past the
# maximum, and tables (a config reload makes new ones) past theirs.
_MemoKey = tuple[
    SignalKind,
    str,
    frozenset[str],
    bool | None,
    bool,
    bool | None,
    str,
    int | None,
    bool,
    bool,
    bool,
]
_MATCHED: dict[int, tuple[tuple[Rule, ...], dict[_MemoKey, Rule]]] = {}
_MATCHED_MAX = 4096
_TABLES_MAX = 16


def _matched(signal: Signal, known: bool, rules: tuple[Rule, ...]) -> Rule:
    """``match_rule(facts_of(signal, known=known), rules)``, remembered."""
    table = _MATCHED.get(id(rules))
    if table is None or table[0] is not rules:
        if len(_MATCHED) >= _TABLES_MAX:
            _MATCHED.clear()
        table = _MATCHED[id(rules)] = (rules, {})
    memo = table[1]
    s = signal
    key = (
        s.kind,
        s.level,
        s.marks,
        s.is_new,
        known,
        s.unhandled,
        s.environment,
        s.users_affected,
        s.is_regression,
        s.is_metric_alert,
        s.is_performance,
    )
    rule = memo.get(key)
    if rule is None:
        if len(memo) >= _MATCHED_MAX:
            memo.clear()
        rule = memo[key] = match_rule(facts_of(signal, known=known), rules)
    return rule


class RuleMiss(msgspec.Struct, frozen=True, kw_only=True):
    """A louder rule above the one that matched, and the first condition that failed."""

    rule: str
    severity: Severity
    failed: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.failed}"


class Why(msgspec.Struct, frozen=True, kw_only=True):
    """Why a signal got its rule, and why not a louder one (``replay --explain``, the
    explain API; the one structure a reader of a routing decision is shown)."""

    rule: str
    severity: Severity
    held: tuple[str, ...]  # the matched rule's conditions, as the facts showed them
    louder_misses: tuple[RuleMiss, ...]  # rules above it, louder, in table order


def why(facts: Facts, rules: tuple[Rule, ...] = CANONICAL_RULES) -> Why:
    """The matched rule, what held, and for each louder rule above it what failed."""
    matched = match_rule(facts, rules)
    misses: list[RuleMiss] = []
    for rule in rules:
        if rule is matched:
            break
        if _LOUDNESS[rule.severity] > _LOUDNESS[matched.severity]:
            failed = _first_failure(rule.when, facts) or "?"
            misses.append(RuleMiss(rule=rule.name, severity=rule.severity, failed=failed))
    return Why(
        rule=matched.name,
        severity=matched.severity,
        held=tuple(text for _, text in matched.when.checks(facts)),
        louder_misses=tuple(misses),
    )


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
    known: bool = False,
    rules: tuple[Rule, ...] = CANONICAL_RULES,
    window: BusinessWindow = ET_BUSINESS_HOURS,
) -> Routing:
    """Severity, matched rule and SEV channel for a signal, at the time it was received.

    ``known``: EyeTok has an open or recently resolved incident for the signal's key
    (decides newness when the payload does not).
    """
    rule = _matched(signal, known, rules)
    business = is_business_hours(signal.received_at, window)
    # a Routing is frozen and made of these three alone: one per combination is shared
    key = (rule.severity, rule.name, business)
    routing = _ROUTINGS.get(key)
    if routing is None:
        if len(_ROUTINGS) >= _MATCHED_MAX:
            _ROUTINGS.clear()
        channel, _ = sev_channel_for(rule.severity, signal.received_at, window)
        routing = _ROUTINGS[key] = Routing(
            severity=rule.severity, rule=rule.name, sev_channel=channel, business_hours=business
        )
    return routing


_ROUTINGS: dict[tuple[Severity, str, bool], Routing] = {}
