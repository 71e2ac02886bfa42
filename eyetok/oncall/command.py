"""``eyetok oncall sync``: one IdP-bound on-call sync now, asked of the running daemon
(its on-call actor runs it, as its 15-minute schedule does), and the difference printed."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from eyetok.config import Settings


def add_parser(commands: Any, daemon_url: str) -> None:
    oncall = commands.add_parser("oncall", help="the IdP-bound on-call rotation")
    oncall.add_argument("action", choices=("sync",), help="sync: apply the IdP's group now")
    oncall.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asks")
    oncall.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    oncall.add_argument("--json", action="store_true", help="the answer as one JSON object")


def run(settings: Settings, args: argparse.Namespace, ask: Callable[..., dict[str, Any]]) -> int:
    answer = ask(
        settings,
        args.url,
        "/api/v1/oncall/sync",
        as_json=args.json,
        expect="message",
        body={"requested_by": args.by},
    )
    if args.json:
        print(json.dumps(answer))
        return 0
    print(answer["message"])
    for field in ("added", "removed", "created", "refused"):
        if answer.get(field):
            print(f"{field}: {', '.join(answer[field])}")
    if answer.get("on_call"):
        print(f"on call now: {answer['on_call']}")
    return 0
