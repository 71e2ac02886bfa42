"""``eyetok rotate slack|webhook|email|pagerduty --sink ID`` and ``eyetok rotate rollback
--sink ID``: the rotation drill, asked of the running daemon's operator API (its rotation
actor owns the secret store). A new Slack token is read from the environment variable
``--token-env`` names (never from the command line, where ``ps`` shows it)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from eyetok.config import Settings

KINDS = ("slack", "webhook", "email", "pagerduty")
DEFAULT_TOKEN_ENV = "SLACK_BOT_TOKEN_NEXT"

Ask = Callable[..., dict[str, Any]]


def add_parser(commands: Any, daemon_url: str) -> None:
    rotate = commands.add_parser(
        "rotate",
        help="rotate a sink's credential (version N+1, handshake again) or roll it back",
    )
    rotate.add_argument("kind", choices=(*KINDS, "rollback"), help="the credential class")
    rotate.add_argument("--sink", required=True, metavar="ID", help="the sink id")
    rotate.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        metavar="VAR",
        help=f"slack: the variable holding the new bot token (default {DEFAULT_TOKEN_ENV})",
    )
    rotate.add_argument("--by", default=os.environ.get("USER", "operator"), help="who rotates")
    rotate.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    rotate.add_argument("--json", action="store_true", help="the answer as one JSON object")


def run(
    settings: Settings, args: argparse.Namespace, ask: Ask, say_error: Callable[..., None]
) -> int:
    """Exit 0 when the daemon did it, 1 when it refused (why on stderr), 2 on bad use."""
    by = args.by.strip()
    if not by:
        say_error("--by: say who rotates", as_json=args.json)
        return 2
    if args.kind == "rollback":
        path, body = f"/api/v1/sinks/{args.sink}/rotation/rollback", {"requested_by": by}
    else:
        body = {"sink_type": args.kind, "requested_by": by}
        if args.kind == "slack":
            token = os.environ.get(args.token_env, "").strip()
            if not token:
                say_error(
                    f"{args.token_env} is not set (the new Slack bot token)", as_json=args.json
                )
                return 2
            body["token"] = token
        path = f"/api/v1/sinks/{args.sink}/rotation"
    answer = ask(settings, args.url, path, as_json=args.json, expect="message", body=body)
    if args.json:
        print(json.dumps(answer))
        return 0
    print(answer["message"])
    handshake = answer.get("handshake") or {}
    if handshake.get("nonce"):
        print(f"nonce: {handshake['nonce']}")
    if handshake.get("url"):
        print(f"approve at: {handshake['url']}")
    if answer.get("publish"):
        record = answer["publish"]
        print(f'publish: {record["name"]} TXT "{record["value"]}"')
    if answer.get("secret"):
        print(f"new signing secret (give it to the receiver; shown once): {answer['secret']}")
    return 0
