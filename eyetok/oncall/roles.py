"""Who may be put on call. A member whose only role is ``root_operator`` is refused: the
root hat is for automation and break-glass work, never for being paged.

:class:`RoleBook` is the one question the sync asks. :class:`IdpRoles` answers it from
the SCIM user's ``roles`` attribute (RFC 7643 section 4.1.2); the role bindings of
EyeTok's own access model can answer it instead by implementing the same method.
"""

from __future__ import annotations

from typing import Protocol

from eyetok.oncall.member import Member

ROOT_OPERATOR = "root_operator"


class RoleBook(Protocol):
    def roles_of(self, member: Member) -> frozenset[str]: ...


class IdpRoles:
    """The roles the IdP lists on the user."""

    def roles_of(self, member: Member) -> frozenset[str]:
        return member.roles


def root_only(roles: frozenset[str]) -> bool:
    return roles == frozenset({ROOT_OPERATOR})
