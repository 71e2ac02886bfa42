"""The people actor's log: the rows it journals and how they fold back into its state on
every (re)start. Pure: no I/O.

The rows are configuration entries of the operator tenant (so the tenant config log, its
Postgres mirror and a fresh dyno's restore carry them): ``role_binding`` (a
:class:`RoleBound`, by the API or, ``by`` :data:`CONFIG`, by the file's ``people:``),
``person_token`` (a :class:`PersonToken`: only the token's SHA-256), ``hat`` (a
:class:`~eyetok.access.Hat`, once when put on and once when taken off) and ``rule_change``
(a :class:`~eyetok.changes.Change`, once per step). The latest row of each thing wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from eyetok.access import Binding, Hat, Role
from eyetok.changes import Change
from eyetok.messages import TenantConfigEntry

CONFIG = "config"  # who binds what the file's people: section binds
KINDS = frozenset({"role_binding", "person_token", "hat", "rule_change"})

BindingKey = tuple[str, Role, str | None]  # person, role, tenant


class RoleBound(msgspec.Struct, frozen=True, kw_only=True):
    person: str
    role: Role
    tenant: str | None
    bound: bool  # False: unbound
    by: str


class PersonToken(msgspec.Struct, frozen=True, kw_only=True):
    token_id: str
    person: str
    token_hash: str
    issued_at: datetime
    by: str


@dataclass
class PeopleLog:
    """The folded log: the API's bindings, what the file bound at the last start, the
    persons' tokens, every hat and every rule change (latest row of each)."""

    api_bindings: dict[BindingKey, Binding] = field(default_factory=dict)
    last_config: frozenset[BindingKey] = frozenset()
    tokens: dict[str, PersonToken] = field(default_factory=dict)
    hats: dict[str, Hat] = field(default_factory=dict)
    changes: dict[str, Change] = field(default_factory=dict)


_binding = msgspec.json.Decoder(RoleBound)
_token = msgspec.json.Decoder(PersonToken)
_hat = msgspec.json.Decoder(Hat)
_change = msgspec.json.Decoder(Change)


def fold_people(entries: Iterable[TenantConfigEntry], operator_tenant: str) -> PeopleLog:
    """The people log in ``entries`` (oldest first; other rows are skipped), folded."""
    log = PeopleLog()
    for entry in entries:
        if entry.tenant != operator_tenant or entry.kind not in KINDS:
            continue
        match entry.kind:
            case "role_binding":
                b = _binding.decode(entry.value_json)
                key = (b.person, b.role, b.tenant)
                if b.by == CONFIG:
                    log.last_config = (
                        log.last_config | {key} if b.bound else log.last_config - {key}
                    )
                elif b.bound:
                    log.api_bindings[key] = Binding(
                        person=b.person, role=b.role, tenant=b.tenant, source="api"
                    )
                else:
                    log.api_bindings.pop(key, None)
            case "person_token":
                t = _token.decode(entry.value_json)
                log.tokens[t.token_id] = t
            case "hat":
                h = _hat.decode(entry.value_json)
                log.hats[h.hat_id] = h
            case _:
                c = _change.decode(entry.value_json)
                log.changes[c.change_id] = c
    return log
