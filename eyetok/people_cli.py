"""``eyetok role …`` and ``eyetok changes …``: hat switches and the two-person review from a
terminal, against the running daemon's API (eyetok/http/people.py).

The person's own API token is read from ``EYETOK_TOKEN`` (a root_operator issues it:
``POST /api/v1/people/<slack user id>/tokens``); without it, the root token
(``EYETOK_ROOT_TOKEN``) is used, which may list changes but never review one or wear a hat.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from eyetok.access import Role

Ask = Callable[..., dict[str, Any]]  # cli._ask_daemon, bound to the settings and the token


def add_commands(commands: Any, daemon_url: str) -> None:
    """The ``role`` and ``changes`` subcommands on the CLI's parser."""
    role = commands.add_parser("role", help="wear a role you hold for a while (a hat switch)")
    verbs = role.add_subparsers(dest="role_command", required=True)
    switch = verbs.add_parser("switch", help="put on a hat: bounded in time, justified")
    switch.add_argument("role", choices=[str(r) for r in Role])
    switch.add_argument("--tenant", metavar="T", help="the tenant (tenant_scoped_operator)")
    switch.add_argument("--for", dest="for_", required=True, metavar="8h", help="up to 24h")
    switch.add_argument("--why", required=True, help='a sentence: "cover for Sam on acme"')
    verbs.add_parser("end", help="take the hat off now")
    verbs.add_parser("whoami", help="the roles you hold and the hat you wear")
    changes = commands.add_parser("changes", help="rule changes waiting for a second person")
    steps = changes.add_subparsers(dest="changes_command", required=True)
    listing = steps.add_parser("list", help="the changes (newest last)")
    listing.add_argument("--status", choices=("pending", "applied", "rejected", "failed"))
    for verb in ("approve", "reject"):
        step = steps.add_parser(verb, help=f"{verb} a change someone else proposed")
        step.add_argument("change", metavar="ID", help="the change id (chg_...)")
        step.add_argument("--why", required=True, help="a sentence the audit keeps")
    for parser in (*verbs.choices.values(), *steps.choices.values()):
        parser.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
        parser.add_argument("--json", action="store_true", help="the answer as one JSON object")


def person_token() -> str | None:
    return os.environ.get("EYETOK_TOKEN") or None


def run(args: argparse.Namespace, ask: Ask) -> None:
    """One ``role``/``changes`` command; :class:`cli._ApiRefused` (raised by ``ask``) says
    why it could not be done."""
    url, as_json = args.url, args.json
    if args.command == "role":
        if args.role_command == "switch":
            body = {"role": args.role, "tenant": args.tenant, "for": args.for_, "why": args.why}
            answer = ask(url, "/api/v1/role/switch", as_json=as_json, expect="hat", body=body)
            hat = answer["hat"]
            scope = f" for {hat['tenant']}" if hat["tenant"] else ""
            line = f"You wear {hat['role']}{scope} until {hat['until']} ({hat['hat_id']})."
        elif args.role_command == "end":
            answer = ask(url, "/api/v1/role/end", as_json=as_json, expect="ended", body={})
            line = f"Hat {answer['ended']} taken off."
        else:
            answer = ask(url, "/api/v1/people/me", as_json=as_json, expect="holds")
            held = ", ".join(
                b["role"] + (f" ({b['tenant']})" if b["tenant"] else "") for b in answer["holds"]
            )
            hat = answer["hat"]
            line = f"{answer['caller']['id']} holds {held or 'no role'}; " + (
                f"wears {hat['role']} until {hat['until']}" if hat else "wears no hat"
            )
    elif args.changes_command == "list":
        params = {"status": args.status} if args.status else None
        answer = ask(url, "/api/v1/changes", as_json=as_json, expect="changes", params=params)
        line = (
            "\n".join(
                f"{c['change_id']}  {c['status'].upper():8}  {c['tenant']}  {c['kind']}  "
                f"by {c['proposed_by']}: {c['why']}"
                + (f"\n{c['diff']}" if c["status"] == "pending" else "")
                for c in answer["changes"]
            )
            or "No changes."
        )
    else:
        path = f"/api/v1/changes/{args.change}/{args.changes_command}"
        answer = ask(url, path, as_json=as_json, expect="change", body={"why": args.why})
        c = answer["change"]
        line = f"{c['change_id']} is {c['status']} ({c['decided_by']}): {c['outcome'] or c['why']}"
    print(json.dumps(answer) if as_json else line)
