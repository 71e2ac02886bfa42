"""What the digests actor reads from the history on start and as digests are posted:
the operator digests (outbox rows whose notice carries ``Acknowledge``) and what became
of them (``digest_acknowledged`` and ``digest_escalated`` audit rows, a cluster's
acknowledgement in the suppression log)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import msgspec

from eyetok.digests import CLUSTER, ESCALATED_RULE, DigestReceipt, title_of
from eyetok.messages import Deliver


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def posted(con: duckdb.DuckDBPyConnection, since: datetime) -> list[DigestReceipt]:
    """The digests planned since ``since``, each once (its first outbox row), escalated
    when its escalated copy was planned (that row carries the same acknowledge value and
    is journalled before the ``digest_escalated`` audit line, so a crash between the two
    cannot escalate it again)."""
    rows = con.execute(
        """SELECT what, arg_min(rule, planned_at), arg_min(title, planned_at),
                  arg_min(notice, planned_at), epoch_ms(min(planned_at)),
                  epoch_ms(min(planned_at) FILTER (WHERE rule = ?))
           FROM (SELECT json_extract_string(deliver_json, '$.acknowledge') AS what,
                        json_extract_string(deliver_json, '$.rule') AS rule,
                        json_extract_string(deliver_json, '$.incident.title') AS title,
                        json_extract_string(deliver_json, '$.notice') AS notice,
                        planned_at
                 FROM deliveries
                 WHERE planned_at >= ? AND deliver_json LIKE '%"acknowledge":"%')
           WHERE what LIKE 'digest:%' OR what LIKE 'cluster:%'
           GROUP BY what HAVING count(*) FILTER (WHERE rule <> ?) > 0
           ORDER BY min(planned_at)""",
        [ESCALATED_RULE, since, ESCALATED_RULE],
    ).fetchall()
    return [
        DigestReceipt(
            what=what,
            title=title_of(rule, title),
            text=text or "",
            posted_at=_at(posted_ms),
            escalated_at=_at(escalated_ms) if escalated_ms is not None else None,
        )
        for what, rule, title, text, posted_ms, escalated_ms in rows
    ]


def outcomes(
    con: duckdb.DuckDBPyConnection, since: datetime
) -> dict[str, tuple[str | None, datetime | None, datetime | None]]:
    """What -> (acknowledged by, acknowledged at, escalated at), from the audit rows (and
    the suppression log: a cluster acknowledged before the digest reader existed)."""
    found: dict[str, tuple[str | None, datetime | None, datetime | None]] = {}
    rows = con.execute(
        """SELECT event, detail, epoch_ms(logged_at) FROM audit_log
           WHERE event IN ('digest_acknowledged', 'digest_escalated') AND logged_at >= ?
           ORDER BY logged_at""",
        [since],
    ).fetchall()
    for event, detail, ms in rows:
        at = _at(ms)
        recorded = json.loads(detail)
        by, acked, escalated = found.get(recorded["what"], (None, None, None))
        if event == "digest_acknowledged" and acked is None:
            by, acked = recorded["by"], at
        elif event == "digest_escalated" and escalated is None:
            escalated = at
        found[recorded["what"]] = (by, acked, escalated)
    clusters = con.execute(
        "SELECT cluster_id, acked_by, epoch_ms(acked_at) FROM suppressions WHERE acked_at >= ?",
        [since],
    ).fetchall()
    for cluster_id, by, ms in clusters:
        at = _at(ms)
        what = CLUSTER + cluster_id
        known_by, acked, escalated = found.get(what, (None, None, None))
        found[what] = (known_by or by, acked or at, escalated)
    return found


def slack_posts(con: duckdb.DuckDBPyConnection, what: str) -> list[Deliver]:
    """The digest ``what``'s posts on Slack sinks (its first and its escalated copy)."""
    rows = con.execute(
        """SELECT deliver_json FROM notifications
           WHERE sink_type = 'slack' AND status = 'delivered'
             AND json_extract_string(deliver_json, '$.acknowledge') = ?
           ORDER BY planned_at""",
        [what],
    ).fetchall()
    return [msgspec.json.decode(row[0], type=Deliver) for row in rows]
