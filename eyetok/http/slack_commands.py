"""``POST /slack/commands``: the ``/eyetok`` slash command (the Slack app's Slash Command
Request URL), form-encoded and signed like the Events API (signature v0, 5-minute window).

``/eyetok role switch ROLE [--tenant T] --for 8h --why "..."``, ``/eyetok role end`` and
``/eyetok role whoami``, as the Slack user Slack signed for; the people actor answers
(eyetok/http/people.py) and the answer is ephemeral: only that person sees it.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from quart import Response, request
from quart_trio import QuartTrio

from eyetok import log, slack_events
from eyetok.clock import Clock
from eyetok.errors import SignatureError
from eyetok.http.people import PeopleDesk, ask


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def add_slack_commands(
    app: QuartTrio, desk: PeopleDesk, signing_secret_now: Callable[[], str | None], clock: Clock
) -> None:
    logger = log.get("http")

    @app.post("/slack/commands")
    async def slack_command() -> Response:
        signing_secret = signing_secret_now()  # SIGHUP may have swapped it
        if signing_secret is None:
            return _json(
                {"error": "no SLACK_SIGNING_SECRET is configured: set it and restart"}, 503
            )
        data = await request.get_data(as_text=False)  # form-encoded, capped (bodies.py)
        raw = data if isinstance(data, bytes) else data.encode()
        try:
            now = int(clock.now().timestamp())
            slack_events.verify_request(raw, request.headers, secret=signing_secret, now=now)
        except SignatureError as exc:
            return _json({"error": str(exc)}, 401)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        user = form.get("user_id", "")
        if not user:
            return _json({"error": "a Slack command carries user_id"}, 400)
        text = await _slash(desk, user, form.get("text", ""))
        logger.info("slack_command", user=user, command=form.get("command", ""), answer=text)
        return _json({"response_type": "ephemeral", "text": text})


class _SlashParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # no exit: the person reads it in Slack
        raise ValueError(message)


def _slash_parser() -> _SlashParser:
    parser = _SlashParser(prog="/eyetok role", add_help=False)
    parser.add_argument("verb", choices=("switch", "end", "whoami"))
    parser.add_argument("role", nargs="?")
    parser.add_argument("--tenant")
    parser.add_argument("--for", dest="for_", default="")
    parser.add_argument("--why", default="")
    return parser


SLASH_USAGE = (
    'usage: /eyetok role switch ROLE [--tenant T] --for 8h --why "cover for X" | '
    "/eyetok role end | /eyetok role whoami"
)


async def _slash(desk: PeopleDesk, user: str, text: str) -> str:
    """The answer to ``/eyetok <text>`` from Slack user ``user``, as a line of text."""
    try:
        words = shlex.split(text)
        if not words or words[0] != "role":
            raise ValueError("EyeTok knows /eyetok role ...")
        args = _slash_parser().parse_args(words[1:])
    except ValueError as exc:
        return f"{exc}. {SLASH_USAGE}"
    if args.verb == "whoami":
        answer = await ask(desk, "whoami", slack_user=user)
    elif args.verb == "end":
        answer = await ask(desk, "end", slack_user=user)
    else:
        body = {"role": args.role, "tenant": args.tenant, "for": args.for_, "why": args.why}
        answer = await ask(desk, "switch", slack_user=user, body=body)
    if answer.status >= 300:
        return f"Refused: {answer.body.get('error')}"
    hat = answer.body.get("hat")
    if args.verb == "switch" and isinstance(hat, dict):
        scope = f" for {hat['tenant']}" if hat.get("tenant") else ""
        return f"You wear {hat['role']}{scope} until {hat['until']} ({hat['hat_id']})."
    if args.verb == "end":
        return f"Hat {answer.body.get('ended')} taken off."
    return json.dumps(answer.body)
