"""The difference between the IdP's on-call group and the PagerDuty schedule. Pure.

Wanted on call: every active member of the group, except a member whose only role is
``root_operator`` (refused and reported). The schedule's layer keeps its users who are
still wanted, in their turn order, and gains the new ones at the end; the rest leave.
Applying the plan twice changes nothing the second time.
"""

from __future__ import annotations

import msgspec

from eyetok.oncall.member import Member
from eyetok.oncall.roles import RoleBook, root_only


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    wanted: tuple[Member, ...]  # in the order they should rotate after the kept ones
    refused: tuple[Member, ...]  # root-only members: never on call
    inactive: tuple[Member, ...]  # deactivated in the IdP


def plan(members: list[Member], roles: RoleBook) -> Plan:
    wanted, refused, inactive = [], [], []
    for member in members:
        if not member.active:
            inactive.append(member)
        elif root_only(roles.roles_of(member)):
            refused.append(member)
        else:
            wanted.append(member)
    return Plan(wanted=tuple(wanted), refused=tuple(refused), inactive=tuple(inactive))


def layer_users(current: tuple[str, ...], wanted_ids: list[str]) -> tuple[str, ...]:
    """The layer's users after the sync: the kept ones in their order, then the new."""
    kept = [u for u in current if u in wanted_ids]
    return (*kept, *[u for u in wanted_ids if u not in kept])
