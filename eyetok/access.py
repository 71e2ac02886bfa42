"""Who may do what: people, their roles, the hat they wear, and the one authorisation
function every action path calls. Pure: no I/O, "now" is passed in.

A person is a Slack user id (``U…``/``W…``), optionally with an email for the IdP. Roles:

- ``viewer``: reads incidents, sinks, budgets;
- ``responder``: acknowledges incidents (of one tenant, or of all when bound without one);
- ``tenant_scoped_operator``: changes one tenant's sinks and proposes its routing rules;
- ``alert_rule_reviewer``: approves or rejects a rule change someone else proposed;
- ``root_operator``: operator-wide work (bindings, verification, the review).

``viewer``, ``responder`` and ``alert_rule_reviewer`` are everyday roles: active whenever
bound. ``tenant_scoped_operator`` and ``root_operator`` are *hats*: held, but active only
after an explicit, justified, time-bounded switch (one hat at a time). A person wearing the
``root_operator`` hat is refused every tenant-scoped action (acknowledging a tenant's
incident, changing a tenant's sinks or routes): they switch to ``tenant_scoped_operator``
for that tenant instead. The root API token (automation) is refused them too.

Open mode: with no person bound at all (no ``people:`` in the configuration, none bound
through the API) nothing is enforced, as before roles existed; the daemon says so at start.

The exceptions: :class:`Refused` (403: the caller lacks the role, and it says which one),
:class:`JustificationRefused` (400: a blank or one-word ``why``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

import msgspec

from eyetok.errors import ConfigError, EyeTokError

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
MAX_HAT = timedelta(hours=24)
_DURATION = re.compile(r"^(?P<n>[1-9][0-9]{0,4})(?P<unit>[mh])$")
MIN_WHY_WORDS = 3


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    TENANT_SCOPED_OPERATOR = "tenant_scoped_operator"
    ALERT_RULE_REVIEWER = "alert_rule_reviewer"
    ROOT_OPERATOR = "root_operator"


HATS = frozenset({Role.TENANT_SCOPED_OPERATOR, Role.ROOT_OPERATOR})
_NO_TENANT = frozenset({Role.ALERT_RULE_REVIEWER, Role.ROOT_OPERATOR})


class Action(StrEnum):
    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"  # a tenant's incident: ack, resolve, an escalation's ack
    REMEDIATE = "remediate"  # approve, reject or propose again a playbook's remediation
    CONFIGURE_TENANT = "configure_tenant"  # a tenant's sinks (mute, write), a routes proposal
    REVIEW_RULES = "review_rules"  # approve or reject someone else's rule change
    OPERATE = "operate"  # operator-wide: bindings, verification, the review


# action -> (tenant-scoped?, the roles that may do it, the least first)
RULES: Mapping[Action, tuple[bool, tuple[Role, ...]]] = {
    Action.VIEW: (False, tuple(Role)),
    Action.ACKNOWLEDGE: (True, (Role.RESPONDER, Role.TENANT_SCOPED_OPERATOR)),
    Action.REMEDIATE: (True, (Role.RESPONDER, Role.TENANT_SCOPED_OPERATOR)),
    Action.CONFIGURE_TENANT: (True, (Role.TENANT_SCOPED_OPERATOR,)),
    Action.REVIEW_RULES: (False, (Role.ALERT_RULE_REVIEWER,)),
    Action.OPERATE: (False, (Role.ROOT_OPERATOR,)),
}


class Refused(EyeTokError):
    """The caller may not do this; ``needed_role`` is the role that would let them."""

    def __init__(self, needed_role: Role, message: str) -> None:
        super().__init__(message)
        self.needed_role = needed_role
        self.message = message


class JustificationRefused(EyeTokError, ValueError):
    """A ``why`` that says nothing (blank, or fewer than three words)."""


class RoleGrant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One role a person holds; ``tenant`` scopes it (required for tenant_scoped_operator,
    refused for alert_rule_reviewer and root_operator, optional otherwise: none = all)."""

    role: Role
    tenant: str | None = None

    def __post_init__(self) -> None:
        if self.role is Role.TENANT_SCOPED_OPERATOR and not self.tenant:
            raise ConfigError("tenant", "tenant_scoped_operator is bound to one tenant: name it")
        if self.role in _NO_TENANT and self.tenant is not None:
            raise ConfigError("tenant", f"{self.role} is not scoped to a tenant")


class PersonConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``people:`` entry: a Slack user id, an optional email and name, the roles held."""

    slack_user_id: str
    roles: tuple[RoleGrant, ...]
    email: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not SLACK_USER_ID.match(self.slack_user_id):
            raise ConfigError(
                "slack_user_id", f"{self.slack_user_id!r} is not a Slack user id (U… or W…)"
            )
        if self.email is not None and "@" not in self.email:
            raise ConfigError("email", f"{self.email!r} is not an email address")


class Binding(msgspec.Struct, frozen=True, kw_only=True):
    """A role bound to a person (from the file, or through the API)."""

    person: str
    role: Role
    tenant: str | None = None
    source: Literal["config", "api"] = "config"

    def covers(self, tenant: str | None) -> bool:
        return self.tenant is None or self.tenant == tenant


class Hat(msgspec.Struct, frozen=True, kw_only=True):
    """A hat switch: ``person`` wears ``role`` (for ``tenant``) from ``since`` until
    ``until`` unless ``ended_at`` says it was taken off earlier (or expired)."""

    hat_id: str
    person: str
    role: Role
    tenant: str | None
    since: datetime
    until: datetime
    why: str
    ended_at: datetime | None = None
    end_reason: str = ""  # "expired", "ended", "replaced by <hat id>"

    def worn(self, now: datetime) -> bool:
        return self.ended_at is None and self.since <= now < self.until


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: a person (Slack user id), the root API token, a tenant token."""

    kind: Literal["person", "root_token", "tenant_token"]
    id: str  # the Slack user id, "root", or the token id
    tenant: str | None = None  # a tenant token's tenant

    def label(self) -> str:
        return {"person": "person", "root_token": "root token", "tenant_token": "token"}[
            self.kind
        ] + (f" {self.id}" if self.kind != "root_token" else "")


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """Why an action is allowed: the caller, the role it acts in and how it came by it."""

    caller: Caller
    action: Action
    tenant: str | None
    role: Role | None  # None: open mode, or a tenant token on its own tenant
    via: Literal["open_mode", "binding", "hat", "root_token", "tenant_token"]

    def by(self) -> str:
        """The name an audit line and a post give the actor."""
        if self.caller.kind == "person":
            return f"person:{self.caller.id}" + (f" as {self.role}" if self.role else "")
        return "root" if self.caller.kind == "root_token" else f"token:{self.caller.id}"


class Roster(msgspec.Struct, frozen=True, kw_only=True):
    """Everyone's bindings and the hats being worn; ``people`` names the known persons."""

    bindings: tuple[Binding, ...] = ()
    hats: tuple[Hat, ...] = ()
    people: frozenset[str] = frozenset()

    @property
    def open_mode(self) -> bool:
        return not self.bindings

    def held(self, person: str) -> list[Binding]:
        return [b for b in self.bindings if b.person == person]

    def hat(self, person: str, now: datetime) -> Hat | None:
        return next((h for h in self.hats if h.person == person and h.worn(now)), None)


def bindings_of(people: Iterable[PersonConfig]) -> tuple[Binding, ...]:
    return tuple(
        Binding(person=p.slack_user_id, role=g.role, tenant=g.tenant, source="config")
        for p in people
        for g in p.roles
    )


def _switch_hint(role: Role, tenant: str | None) -> str:
    scope = f" --tenant {tenant}" if role is Role.TENANT_SCOPED_OPERATOR and tenant else ""
    return f'eyetok role switch {role}{scope} --for 8h --why "<what you are doing, and why>"'


def authorise(
    caller: Caller, action: Action, tenant: str | None, roster: Roster, now: datetime
) -> Grant:
    """The grant for ``caller`` doing ``action`` (on ``tenant``, for a tenant-scoped action),
    or :class:`Refused` naming the role it needs. The one place this is decided."""
    scoped, allowed = RULES[action]
    needed = allowed[0]
    where = f" on tenant {tenant!r}" if scoped and tenant else ""
    if roster.open_mode:
        return Grant(caller=caller, action=action, tenant=tenant, role=None, via="open_mode")
    if caller.kind == "root_token":
        if scoped:
            raise Refused(
                needed,
                f"{action}{where} needs {needed} (the root token is for automation and is "
                f"refused tenant-scoped actions): a person switches hats: "
                f"{_switch_hint(Role.TENANT_SCOPED_OPERATOR, tenant)}",
            )
        if action is Action.REVIEW_RULES:
            raise Refused(needed, f"{action} needs a person holding {needed}, not the root token")
        return Grant(
            caller=caller, action=action, tenant=tenant, role=Role.ROOT_OPERATOR, via="root_token"
        )
    if caller.kind == "tenant_token":
        if caller.tenant == tenant and (scoped or action is Action.VIEW):
            return Grant(caller=caller, action=action, tenant=tenant, role=None, via="tenant_token")
        raise Refused(needed, f"{action}{where} needs {needed}; a tenant token cannot")
    person = caller.id
    if person not in roster.people and not roster.held(person):
        raise Refused(
            needed,
            f"{action}{where} needs the role {needed}: Slack user {person} is not a known "
            "person (ask a root_operator to bind a role)",
        )
    hat = roster.hat(person, now)
    if hat is not None and hat.role is Role.ROOT_OPERATOR and scoped:
        raise Refused(
            Role.TENANT_SCOPED_OPERATOR,
            f"{action}{where} is tenant-scoped and a root_operator session is refused it: "
            f"switch hats: {_switch_hint(Role.TENANT_SCOPED_OPERATOR, tenant)}",
        )
    for binding in roster.held(person):
        if binding.role in HATS or binding.role not in allowed:
            continue
        if binding.covers(tenant):  # a binding to one tenant reads and acts on it alone
            return Grant(
                caller=caller, action=action, tenant=tenant, role=binding.role, via="binding"
            )
    if hat is not None and hat.role in allowed and hat.tenant in (None, tenant):
        return Grant(caller=caller, action=action, tenant=tenant, role=hat.role, via="hat")
    dormant = next(
        (
            b
            for b in roster.held(person)
            if b.role in HATS and b.role in allowed and b.covers(tenant)
        ),
        None,
    )
    if dormant is not None:
        raise Refused(
            dormant.role,
            f"{action}{where} needs the role {dormant.role}, which {person} holds but is not "
            f"wearing: {_switch_hint(dormant.role, tenant)}",
        )
    raise Refused(
        needed,
        f"{action}{where} needs the role {' or '.join(allowed)}; {person} holds "
        f"{', '.join(sorted(_held_names(roster.held(person)))) or 'no role'}",
    )


def _held_names(bindings: Iterable[Binding]) -> set[str]:
    return {f"{b.role}" + (f" ({b.tenant})" if b.tenant else "") for b in bindings}


def can_wear(roster: Roster, person: str, role: Role, tenant: str | None) -> None:
    """Raise :class:`Refused` unless ``person`` holds the hat ``role`` (for ``tenant``)."""
    if role not in HATS:
        raise Refused(role, f"{role} is an everyday role: active whenever it is bound")
    if role is Role.TENANT_SCOPED_OPERATOR and not tenant:
        raise Refused(role, "tenant_scoped_operator is worn for one tenant: --tenant T")
    if role is Role.ROOT_OPERATOR and tenant:
        raise Refused(role, "root_operator is not worn for a tenant")
    if not any(b.role is role and b.tenant == tenant for b in roster.held(person)):
        scope = f" for tenant {tenant!r}" if tenant else ""
        raise Refused(role, f"{person} does not hold {role}{scope}: a root_operator binds it")


def check_why(why: str, *, field: str = "why") -> str:
    """The justification, stripped; :class:`JustificationRefused` for a blank or one-word
    one (at least three words, as "cover for X")."""
    text = " ".join(why.split())
    if len(re.findall(r"[^\W_]{1,}", text)) < MIN_WHY_WORDS:
        raise JustificationRefused(
            f"{field}: say why in a sentence (at least {MIN_WHY_WORDS} words): "
            f"{why.strip()!r} is not a justification"
        )
    return text[:500]


def parse_for(text: str) -> timedelta:
    """``8h``/``90m`` -> the hat's length; at most :data:`MAX_HAT`. Raises ValueError."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 8h or 90m")
    n = int(match["n"])
    length = timedelta(hours=n) if match["unit"] == "h" else timedelta(minutes=n)
    if length > MAX_HAT:
        raise ValueError(f"{text!r} is longer than a hat may be worn ({MAX_HAT})")
    return length


def check_people(people: Iterable[PersonConfig], tenants: Iterable[str]) -> None:
    """The ``people:`` section against the tenants: :class:`ConfigError` naming the field."""
    known = set(tenants)
    seen: set[str] = set()
    for i, person in enumerate(people):
        if person.slack_user_id in seen:
            raise ConfigError(
                f"people[{i}].slack_user_id", f"{person.slack_user_id} is listed twice"
            )
        seen.add(person.slack_user_id)
        if not person.roles:
            raise ConfigError(f"people[{i}].roles", "a person holds at least one role")
        for j, grant in enumerate(person.roles):
            if grant.tenant is not None and grant.tenant not in known:
                raise ConfigError(
                    f"people[{i}].roles[{j}].tenant", f"no tenant named {grant.tenant!r}"
                )
