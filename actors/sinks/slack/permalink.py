"""The permalink of an incident's first Slack post (``chat.getPermalink``), for the ticket
trail's opening note: slack-sdk's ``WebClient`` in a worker thread, the channel name
resolved to its id first (``conversations.list``, remembered)."""

from __future__ import annotations

import threading

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from eyetok import log
from eyetok.config import Settings
from state.history.store import HistoryStore


class SlackPermalinks:
    """The links of incidents' first Slack posts, through each post's own Slack sink."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._log = log.get("ticket_trail")

    async def of(self, store: HistoryStore, incident_id: str) -> tuple[str | None, bool]:
        """The permalink (None: none yet) and whether a Slack post is still pending."""
        rows: list[tuple[str, str, str, str | None]] = await store.read(
            lambda con: con.execute(
                # the base tables, filtered first (the notifications view dedups them all)
                """SELECT d.sink_id, d.target, coalesce(max(o.outcome), 'pending'),
                          max(o.external_ref)
                   FROM (SELECT DISTINCT delivery_id, sink_id, target, planned_at
                         FROM deliveries WHERE incident_id = ? AND sink_type = 'slack'
                         AND action = 'open') d
                   LEFT JOIN delivery_outcomes o USING (delivery_id)
                   GROUP BY d.delivery_id, d.sink_id, d.target, d.planned_at
                   ORDER BY d.planned_at""",
                [incident_id],
            ).fetchall()
        )
        pending = any(status == "pending" for _, _, status, _ in rows)
        for sink_id, target, status, ts in rows:
            token = self._settings.sink_secrets.get(sink_id)
            if status == "delivered" and ts and token:
                link = await trio.to_thread.run_sync(self._permalink, sink_id, token, target, ts)
                if link is not None:
                    return link, pending
        return None, pending

    def _permalink(self, sink_id: str, token: str, target: str, ts: str) -> str | None:
        client = WebClient(token=token, base_url=self._settings.slack_api_url, timeout=10)
        try:
            channel = self._channel_id(client, sink_id, target)
            answer = client.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackClientError, OSError, ValueError) as exc:
            self._log.warning(
                "slack_permalink_unavailable", sink=sink_id, channel=target, reason=str(exc)
            )
            return None
        link = answer.get("permalink")
        return link if isinstance(link, str) else None

    def _channel_id(self, client: WebClient, sink_id: str, target: str) -> str:
        name = target.lstrip("#")
        if name[:1] in "CGD" and name.isupper() and name.isalnum():
            return name
        with self._lock:
            known = self._ids.get((sink_id, name))
        if known is not None:
            return known
        for page in client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=1000
        ):
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    with self._lock:
                        self._ids[(sink_id, name)] = str(channel["id"])
                    return str(channel["id"])
        return name  # Slack answers channel_not_found, logged by the caller
