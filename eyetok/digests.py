"""The digest reader, pure: every operator digest carries ``Acknowledge``; one nobody
acknowledged within the operator's ``escalation.digest_escalate_s`` (15 minutes by
default) goes once to the operator's secondary on-call.

The digests are the suppression window's cluster notice (acknowledged as
``cluster:<id>``, the path ``eyetok suppressions --ack`` takes too), the budget cap summary
to ``#alerts-cap`` and the daily review (both ``digest:<delivery id>``). A digest's state is
a :class:`DigestReceipt`, derived from stored rows (the digest's outbox row, the
``digest_acknowledged`` and ``digest_escalated`` audit rows, the Postgres
``digest_receipts`` mirror), so the timer survives a restart and a fresh dyno and fires
once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from eyetok.messages import Reply
from eyetok.wording import duration, when

DIGEST = "digest:"  # the acknowledge value of a cap summary or a daily review
CLUSTER = "cluster:"  # the acknowledge value of a cluster notice
ESCALATED_RULE = "digest-escalated"  # the rule of a digest's escalated copy
_TITLES = {"suppression-fired": "suppression cluster notice", "budget-cap": "budget cap summary"}


def digest_value(delivery_id: str) -> str:
    """What the Acknowledge button of the digest posted as ``delivery_id`` carries."""
    return DIGEST + delivery_id


def title_of(rule: str, title: str) -> str:
    """What a digest is, in words, from its notice's rule and title."""
    return _TITLES.get(rule, title)


class DigestReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """One operator digest and what became of it."""

    what: str  # the acknowledge value: ``digest:<delivery id>`` or ``cluster:<id>``
    title: str  # what the digest is, in words ("daily review", "budget cap summary" ...)
    posted_at: datetime
    text: str = ""  # the digest itself (the escalation repeats it)
    acknowledged_by: str | None = None  # "slack:<name> (<user id>)", "cli:<name>" ...
    acknowledged_at: datetime | None = None
    escalated_at: datetime | None = None


def escalation_due(receipt: DigestReceipt, after: timedelta) -> datetime | None:
    """When the digest escalates (None: acknowledged, or escalated already)."""
    if receipt.acknowledged_at is not None or receipt.escalated_at is not None:
        return None
    return receipt.posted_at + after


def escalation_text(receipt: DigestReceipt, now: datetime) -> str:
    return (
        f":arrow_double_up: Escalated to you: nobody acknowledged the {receipt.title} posted "
        f"{when(receipt.posted_at)} within {duration(now - receipt.posted_at)}.\n{receipt.text}"
    )


def merged(a: DigestReceipt, b: DigestReceipt) -> DigestReceipt:
    """The two records of one digest as one (what either knows was done counts)."""
    return msgspec.structs.replace(
        a,
        text=a.text or b.text,
        acknowledged_by=a.acknowledged_by or b.acknowledged_by,
        acknowledged_at=a.acknowledged_at or b.acknowledged_at,
        escalated_at=a.escalated_at or b.escalated_at,
    )


class DigestRead(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human acknowledged the digest ``what`` (a Slack button, the operator API). The
    answer: the receipt as it now stands (None: no such digest) and whether this was the
    acknowledgement that counted."""

    what: str
    by: str
    at: datetime
    reply: Reply[tuple[DigestReceipt | None, bool]] | None = None
