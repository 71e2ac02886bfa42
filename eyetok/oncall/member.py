"""One person of the on-call group, as the IdP knows them (no SCIM parsing here: the
pydantic models of ``scim2-models`` are loaded only where the IdP is read)."""

from __future__ import annotations

import msgspec


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """One person of the on-call group, as the IdP knows them."""

    scim_id: str
    email: str
    name: str
    active: bool
    slack_user: str | None  # the ``ims`` value of type ``slack``
    roles: frozenset[str]
