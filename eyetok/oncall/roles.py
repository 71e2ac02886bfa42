"""Who may be put on call. A member whose only role is ``root_operator`` is refused: the
root hat is for automation and break-glass work, never for being paged.

:class:`RoleBook` is the one question the sync asks. :class:`PeopleRoles` answers it from
the roles bound in EyeTok (``people:`` and the API, eyetok/access.py): the member is known
by their Slack id (the IdP user's ``ims`` of type ``slack``) or by a configured person's
email. :class:`IdpRoles` answers from the SCIM user's ``roles`` attribute (RFC 7643
section 4.1.2): only in open mode (no person bound in EyeTok), and for a member EyeTok
binds no role to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from eyetok.oncall.member import Member

ROOT_OPERATOR = "root_operator"


class RoleBook(Protocol):
    def roles_of(self, member: Member) -> frozenset[str]: ...


class IdpRoles:
    """The roles the IdP lists on the user."""

    def roles_of(self, member: Member) -> frozenset[str]:
        return member.roles


@dataclass(frozen=True)
class PeopleRoles:
    """The roles EyeTok binds to each person (Slack user id -> role names); ``emails``
    (lower-cased email -> Slack user id) knows a member the IdP gives no Slack id."""

    roles: Mapping[str, frozenset[str]]
    emails: Mapping[str, str]

    def roles_of(self, member: Member) -> frozenset[str]:
        person = member.slack_user or self.emails.get(member.email.lower())
        if person is not None and person in self.roles:
            return self.roles[person]
        return member.roles  # bound nothing in EyeTok: what the IdP says


RoleSource = Callable[[], Awaitable[RoleBook]]  # asked before each sync


def fixed(book: RoleBook) -> RoleSource:
    """The same RoleBook for every sync."""

    async def same() -> RoleBook:
        return book

    return same


def root_only(roles: frozenset[str]) -> bool:
    return roles == frozenset({ROOT_OPERATOR})
