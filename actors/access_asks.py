"""What other actors ask the people actor (actors/people/), over its inbox:

- :func:`thread_gate`: may this Slack user act on a tenant's incident from its thread
  (the conversation actor's ``ack``, ``resolve`` and ``mute``)? The same one
  authorisation as the API, the CLI and the buttons (eyetok/access.py ``authorise``);
- :func:`people_role_book`: the roles EyeTok binds, as the on-call sync's
  :class:`~eyetok.oncall.roles.RoleBook` (the IdP's own ``roles`` only in open mode).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from eyetok.access import Action, Caller
from eyetok.messages import ApiAnswer, PeopleMessage, PeopleOp, PeopleRequest, Reply
from eyetok.oncall.roles import IdpRoles, PeopleRoles, RoleBook, RoleSource

ASK_TIMEOUT_S = 60
EYETOK = Caller(kind="root_token", id="eyetok")  # EyeTok itself, reading the bindings

ThreadGate = Callable[[str, Action, str], Awaitable[str | None]]


async def ask_people(
    to_people: trio.MemorySendChannel[PeopleMessage],
    request_of: Callable[[Reply[ApiAnswer]], PeopleRequest],
) -> ApiAnswer:
    """One call on the people actor, answered by it."""
    reply: Reply[ApiAnswer] = Reply()
    await to_people.send(request_of(reply))
    with trio.fail_after(ASK_TIMEOUT_S):
        return await reply.wait()


async def ask(
    to_people: trio.MemorySendChannel[PeopleMessage], op: PeopleOp, **fields: Any
) -> ApiAnswer:
    """One ``op`` on the people actor, the request's ``fields`` as given."""
    return await ask_people(to_people, lambda reply: PeopleRequest(op=op, reply=reply, **fields))


def thread_gate(to_people: trio.MemorySendChannel[PeopleMessage]) -> ThreadGate:
    """``gate(slack user id, action, tenant)``: None when allowed (open mode included),
    else the refusal naming the role needed (audited by the people actor)."""

    async def refusal(slack_user: str, action: Action, tenant: str) -> str | None:
        answer = await ask(
            to_people, "authorise", slack_user=slack_user, action=str(action), tenant=tenant
        )
        return None if answer.status == 200 else str(answer.body.get("error"))

    return refusal


def people_role_book(
    to_people: trio.MemorySendChannel[PeopleMessage], emails: Mapping[str, str]
) -> RoleSource:
    """Before each sync: the people actor's bindings now, as a RoleBook (``emails``: the
    configured persons' emails, by Slack user id, to know an IdP user without a Slack id);
    in open mode (no person bound) the IdP's own ``roles`` attribute answers."""

    async def book() -> RoleBook:
        answer = await ask(to_people, "people", caller=EYETOK)
        bindings = answer.body.get("bindings")
        if answer.status != 200 or answer.body.get("open_mode") or not isinstance(bindings, list):
            return IdpRoles()
        bound: dict[str, set[str]] = {}
        for binding in bindings:
            bound.setdefault(str(binding["person"]), set()).add(str(binding["role"]))
        return PeopleRoles(
            roles={person: frozenset(roles) for person, roles in bound.items()},
            emails={email.lower(): person for person, email in emails.items()},
        )

    return book
