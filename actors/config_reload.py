"""On SIGHUP, the configuration file read again: a change to a guarded section (routing
rules, recognisers, playbooks, budgets, suppression thresholds; eyetok/config_review.py)
is not applied but proposed to the people actor, as a rule change through the API is. The
proposer is the person whose token is in ``EYETOK_TOKEN``, else ``config-file``; the
justification is the file's ``change_justification:``. A file that does not parse, or a
change without a sentence of justification, is logged and proposes nothing; the file is
read again at the next SIGHUP.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.access_asks import ask
from eyetok import log
from eyetok.access import Caller
from eyetok.config import FileConfig, parse_file_config
from eyetok.config_review import config_proposal, restart_needed
from eyetok.errors import ConfigError
from eyetok.messages import ApiAnswer, PeopleMessage

CONFIG_FILE = Caller(kind="root_token", id="config-file")  # the proposer without EYETOK_TOKEN


def _read(path: str) -> FileConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("EYETOK_CONFIG", f"cannot read {path}: {exc.strerror}") from exc
    return parse_file_config(text, source=path)


def config_reviewer(
    to_people: trio.MemorySendChannel[PeopleMessage], env: Mapping[str, str] | None = None
) -> Callable[[str], Awaitable[None]]:
    """``review(why)``: read the file again and propose what changed in its guarded
    sections since it was last read (at start, or at the last proposal)."""
    environ = os.environ if env is None else env
    path = environ.get("EYETOK_CONFIG")
    token = environ.get("EYETOK_TOKEN", "")
    logger = log.get("config")
    live: FileConfig | None = None
    if path:
        try:
            live = _read(path)  # what start-up read (moments ago)
        except ConfigError as exc:
            logger.error("config_not_reviewed", error=str(exc), why="the file did not read")

    async def review(why: str) -> None:
        nonlocal live
        if path is None or live is None:
            return
        try:
            read = await trio.to_thread.run_sync(_read, path)
        except ConfigError as exc:
            logger.error("config_not_reread", why=why, error=str(exc))
            return
        proposal = config_proposal(live, read)
        if proposal is None:
            return
        body = {
            "kind": "config_file",
            "why": proposal.why,
            "diff": proposal.diff,
            "proposed": msgspec.to_builtins(proposal),
        }
        answer = await ask(
            to_people,
            "propose_config",
            credential=token,
            caller=None if token else CONFIG_FILE,
            body=body,
        )
        if answer.status != 202:
            logger.error(
                "config_change_not_proposed",
                why=why,
                sections=list(proposal.sections),
                error=answer.body.get("error"),
            )
            return
        live = read  # proposed: not proposed again at the next SIGHUP
        change = answer.body.get("change")
        logger.warning(
            "config_change_proposed",
            why=why,
            sections=list(proposal.sections),
            change_id=change.get("change_id") if isinstance(change, dict) else None,
            applied=False,
            next="a different person holding alert_rule_reviewer approves it",
        )

    return review


TenantCall = Callable[..., Awaitable[ApiAnswer]]


async def apply_config_change(
    tenant_call: TenantCall, proposed: Mapping[str, Any], by: str
) -> ApiAnswer:
    """Apply an approved change of the file: each tenant's routing rules live (as the
    routes API, in both names ``by``); the other sections at the next restart, said in
    the answer's ``note``."""
    routes = proposed.get("routes") or {}
    written: list[str] = []
    refused: list[str] = []
    for tenant, rules in sorted(routes.items()):
        answer = await tenant_call("", tenant, "put_routes", body={"routes": rules}, vouched=by)
        if answer.status < 300:
            written.append(tenant)
        else:
            refused.append(f"{tenant}: {answer.body.get('error')}")
    later = restart_needed(list(proposed.get("sections") or ()))
    note = "; ".join(
        part
        for part in (
            f"routes of {', '.join(written)} applied live" if written else "",
            f"{', '.join(later)} take effect at the next restart" if later else "",
        )
        if part
    )
    if refused:
        return ApiAnswer(
            status=409, body={"error": f"routes not applied ({'; '.join(refused)})", "note": note}
        )
    return ApiAnswer(status=200, body={"note": note})


def and_review(
    reload: Callable[[str], Awaitable[dict[str, str]]], review: Callable[[str], Awaitable[None]]
) -> Callable[[str], Awaitable[dict[str, str]]]:
    """SIGHUP's work: the credentials read again and swapped, then the file reviewed."""

    async def both(why: str) -> dict[str, str]:
        current = await reload(why)
        await review(why)
        return current

    return both
