"""The two-person rule: a rule change is proposed by one person and goes live only when a
different person holding ``alert_rule_reviewer`` approves it. Pure: no I/O.

A :class:`Change` moves ``pending`` -> ``approved`` -> ``applied`` (or ``failed``, when
applying it was refused: the target changed meanwhile), or ``pending`` -> ``rejected``.
Each step is one journalled row; the latest row of a change is its standing, so pending
proposals survive a restart (eyetok/people_log.py). The diff is a unified diff of the JSON
(keys sorted, two-space indent) before and after, which is what the reviewer reads and
what the audit keeps.
"""

from __future__ import annotations

import difflib
import json
import secrets
from datetime import datetime
from typing import Literal

import msgspec

from eyetok.errors import EyeTokError

ChangeKind = Literal["tenant_routes", "config_file"]
ChangeStatus = Literal["pending", "approved", "rejected", "applied", "failed"]


class ChangeRefused(EyeTokError):
    """A review step that cannot be taken: ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Change(msgspec.Struct, frozen=True, kw_only=True):
    change_id: str
    kind: ChangeKind
    tenant: str
    proposed_by: str  # "person:U…" or "token:<id>"
    proposed_at: datetime
    why: str
    diff: str
    proposed_json: str  # the body that is applied on approval
    status: ChangeStatus = "pending"
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_why: str = ""
    outcome: str = ""  # what applying it answered


def new_change_id() -> str:
    return "chg_" + secrets.token_hex(6)


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, indent=2) + "\n"


def unified_diff(before: object, after: object, *, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            canonical(before).splitlines(keepends=True),
            canonical(after).splitlines(keepends=True),
            fromfile=f"{name} (live)",
            tofile=f"{name} (proposed)",
        )
    )


def decide(change: Change, *, approve: bool, reviewer: str, why: str, at: datetime) -> Change:
    """The change approved or rejected by ``reviewer``; :class:`ChangeRefused` when it is
    not pending (409) or the reviewer proposed it (403: the two-person rule)."""
    if change.status != "pending":
        raise ChangeRefused(409, f"change {change.change_id} is {change.status}, not pending")
    if reviewer == change.proposed_by:
        raise ChangeRefused(
            403,
            f"change {change.change_id} was proposed by {reviewer}: a different person "
            "holding alert_rule_reviewer must review it (the two-person rule)",
        )
    return msgspec.structs.replace(
        change,
        status="approved" if approve else "rejected",
        decided_by=reviewer,
        decided_at=at,
        decision_why=why,
    )
