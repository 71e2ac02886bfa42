"""The IdP's on-call group over SCIM 2.0 (RFC 7644): ``GET /Groups`` filtered by
displayName, then ``GET /Users/{id}`` for each member, parsed with ``scim2-models``.

Errors: :class:`IdpError` (the IdP did not answer, refused the token, or answered
something that is not SCIM), naming what was asked.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError
from scim2_models import Group, ListResponse, User

from eyetok.errors import EyeTokError
from eyetok.oncall.member import Member

TIMEOUT_S = 10.0
SCIM_JSON = "application/scim+json"


class IdpError(EyeTokError):
    """The IdP could not tell who is in the on-call group."""


def _member(user: User) -> Member:  # type: ignore[type-arg]
    emails = user.emails or []
    primary = next((e for e in emails if e.primary), emails[0] if emails else None)
    email = (primary.value if primary is not None else None) or user.user_name or ""
    slack = next((i.value for i in user.ims or [] if (i.type or "").lower() == "slack"), None)
    return Member(
        scim_id=user.id or "",
        email=str(email).lower(),
        name=user.display_name or user.user_name or str(email),
        active=user.active is not False,
        slack_user=slack,
        roles=frozenset(r.value for r in user.roles or [] if r.value),
    )


async def oncall_group(
    client: httpx.AsyncClient, base_url: str, token: str, group: str
) -> list[Member]:
    """The members of the group whose displayName is ``group``, each read in full."""
    headers = {"authorization": f"Bearer {token}", "accept": SCIM_JSON}
    escaped = group.replace("\\", "\\\\").replace('"', '\\"')
    found = await _get(
        client,
        f"{base_url}/Groups",
        headers,
        params={"filter": f'displayName eq "{escaped}"'},
    )
    try:
        groups = ListResponse[Group].model_validate(found)
    except ValidationError as exc:
        raise IdpError(
            f"GET {base_url}/Groups: not a SCIM list response ({exc.error_count()} errors)"
        ) from exc
    resources = [g for g in groups.resources or [] if g.display_name == group]
    if not resources:
        raise IdpError(f"the IdP has no group named {group!r}")
    members: list[Member] = []
    for ref in resources[0].members or []:
        if not ref.value:
            continue
        data = await _get(client, f"{base_url}/Users/{ref.value}", headers)
        try:
            members.append(_member(User.model_validate(data)))
        except ValidationError as exc:
            raise IdpError(f"GET /Users/{ref.value}: not a SCIM user") from exc
    return members


async def _get(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    params: dict[str, str] | None = None,
) -> object:
    try:
        response = await client.get(url, headers=headers, params=params, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise IdpError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise IdpError(f"GET {url}: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise IdpError(f"GET {url}: not JSON") from exc
