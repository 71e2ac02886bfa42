"""Slack messages in Block Kit, pure: an incident and what happened -> a message.

SEV1 carries the Emergency SOP link (in its text too: the line a phone's notification
shows) and asks for a human ack; SEV2 mentions the on-call user and says a human is
needed; SEV2.5 is SEV2 without the call-out; SEV3 is posted for the record. When a
playbook matched, the post says what it will do instead (its checks and proposal follow
in the thread: ``Deliver.post``, rendered with their buttons). A post never claims an action that
did not happen. Repeats and resolves reply in the incident's thread.
A message held for the sink's verification says how late it is.
Times are said in America/New_York with UTC in brackets (:mod:`eyetok.wording`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eyetok.config import SlackOptions
from eyetok.guard import scrub
from eyetok.messages import Deliver, Incident, IncidentAction, PlaybookPost, SevChannel
from eyetok.wording import duration, plural, when


class SlackUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """A ``chat.update`` of the message ``ts`` in ``channel``."""

    channel: str
    ts: str
    text: str
    blocks: tuple[dict[str, Any], ...]


class SlackMessage(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    text: str
    blocks: tuple[dict[str, Any], ...]
    thread_ts: str | None = None
    # not sent as such: the incident's first post rewritten in place (chat.update) before
    # this one is posted (an acknowledgement replaces its button with who acknowledged)
    update: SlackUpdate | None = None
    # not sent: when the delivery was planned (one planned before this process started
    # may have been posted by the process before; the sink looks before posting)
    planned_at: datetime | None = None


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


ACKNOWLEDGE_ACTION = "eyetok_acknowledge"
# opens the "Resolve with a note" modal (eyetok/http/slack_interactions.py)
RESOLVE_ACTION = "eyetok_resolve_with_note"
# What SEV2/SEV2.5 and SEV3 posts say: only what happened (there is no playbook yet).
NEEDS_A_HUMAN = "Needs a human: no remediation is proposed automatically yet."
FOR_THE_RECORD = "Posted for the record; no automatic triage ran."


def _acknowledge_button(what: str, *, resolvable: bool = False) -> dict[str, Any]:
    """Something a human must acknowledge (``cluster:<id>``, ``incident:<id>``): Slack's
    interactivity request carries ``action_id`` and ``value`` back to EyeTok. An incident
    also gets ``Resolve…`` (a modal asks for a note)."""
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "style": "primary",
            "text": {"type": "plain_text", "text": "Acknowledge"},
            "action_id": ACKNOWLEDGE_ACTION,
            "value": what,
        }
    ]
    if resolvable:
        elements.append(_resolve_button(what))
    return {"type": "actions", "elements": elements}


def _resolve_button(what: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Resolve…"},
        "action_id": RESOLVE_ACTION,
        "value": what,
    }


def _first_post_update(
    deliver: Deliver, thread_ts: str | None, options: SlackOptions
) -> SlackUpdate | None:
    """The incident's first post as it should now read (who acknowledged or resolved
    it), to rewrite in place; None when the first post never landed."""
    if thread_ts is None:
        return None
    first = render(
        msgspec.structs.replace(deliver, action=IncidentAction.OPEN, step=None),
        thread_ts=None,
        options=options,
    )
    return SlackUpdate(channel=first.channel, ts=thread_ts, text=first.text, blocks=first.blocks)


def _escape(text: str) -> str:
    """Upstream text made safe for mrkdwn, with IP literals scrubbed."""
    return scrub(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _buttons(post: PlaybookPost) -> list[dict[str, Any]]:
    if not post.buttons:
        return []
    return [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": b.text},
                    "action_id": b.action_id,
                    "value": b.value,
                    **({"style": b.style} if b.style else {}),
                }
                for b in post.buttons
            ],
        }
    ]


def _playbook_post(deliver: Deliver, post: PlaybookPost, thread_ts: str | None) -> SlackMessage:
    """A playbook's post in the incident's thread (at the top level, naming the incident,
    when the first post never landed)."""
    text = scrub(post.text)
    blocks = [_section(text), *_buttons(post)]
    if thread_ts is None:
        incident = deliver.incident
        label = incident.sev_channel.value if incident.sev_channel else "audit"
        blocks.insert(0, _section(f"[{label}] {_escape(incident.title)}"))
        text = f"[{label}] {scrub(incident.title)}: {text}"
    return SlackMessage(
        channel=deliver.destination.target,
        text=text,
        blocks=tuple(blocks),
        thread_ts=thread_ts,
        planned_at=deliver.planned_at,
    )


def _rewritten(deliver: Deliver) -> SlackUpdate | None:
    """The post a decision was about, as it now reads (None: not known to have landed)."""
    rewrite = deliver.rewrite
    if rewrite is None or rewrite.ts is None:
        return None
    text = scrub(rewrite.text)
    post = PlaybookPost(text=text, buttons=rewrite.buttons)
    blocks = (_section(text), *_buttons(post))
    return SlackUpdate(channel=deliver.destination.target, ts=rewrite.ts, text=text, blocks=blocks)


def render(deliver: Deliver, *, thread_ts: str | None, options: SlackOptions) -> SlackMessage:
    message = _render(deliver, thread_ts=thread_ts, options=options)
    rewritten = _rewritten(deliver)
    if rewritten is None or message.update is not None:
        return message
    return msgspec.structs.replace(message, update=rewritten)


def _render(deliver: Deliver, *, thread_ts: str | None, options: SlackOptions) -> SlackMessage:
    if deliver.post is not None:
        return _playbook_post(deliver, deliver.post, thread_ts)
    if deliver.notice is not None:
        notice = scrub(deliver.notice)  # it quotes upstream text (a dead delivery's title)
        notice_blocks = [_section(notice)]
        if deliver.acknowledge is not None:
            notice_blocks.append(_acknowledge_button(deliver.acknowledge))
        if deliver.late:
            notice_blocks.append(_context(f":hourglass: {deliver.late}"))
            notice += f" ({deliver.late})"
        return SlackMessage(
            channel=deliver.destination.target,
            text=notice,
            blocks=tuple(notice_blocks),
            # a notice about an incident (an answer in its thread) goes into the thread
            thread_ts=thread_ts if deliver.action is IncidentAction.UPDATE else None,
            planned_at=deliver.planned_at,
        )
    incident = deliver.incident
    channel_label = incident.sev_channel.value if incident.sev_channel else "audit"
    title = _escape(incident.title)
    link = f"<{scrub(incident.url)}|{title}>" if incident.url else title
    facts = (
        f"*severity* {incident.severity.value} · *rule* `{deliver.rule}` · "
        f"*incident* `{incident.incident_id}`"
        + (f" · *env* {_escape(incident.environment)}" if incident.environment else "")
        + (f" · *project* {_escape(incident.project)}" if incident.project else "")
    )
    blocks: list[dict[str, Any]] = []
    update: SlackUpdate | None = None
    match deliver.action:
        case IncidentAction.OPEN:
            header = f":rotating_light: [{channel_label}] {title}"
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": header[:150]}})
            blocks.append(_section(f"{link}\n{facts}"))
            if incident.culprit:
                blocks.append(_context(f"culprit: `{_escape(incident.culprit)}`"))
            blocks.extend(_posture(incident, options, deliver.playbook_note))
            if deliver.step == "escalated" and incident.escalated_at is not None:
                waited = duration(incident.escalated_at - incident.opened_at)
                blocks.append(
                    _section(
                        f":arrow_double_up: Escalated to you: nobody acknowledged this SEV1 "
                        f"within {waited}."
                    )
                )
            text = f"[{channel_label}] {scrub(incident.title)}"
            if incident.sev_channel is SevChannel.SEV1:
                # the text is what a phone's notification shows: the SOP goes in it
                text += f" · Emergency SOP: {options.emergency_sop_url}"
        case IncidentAction.UPDATE if deliver.step == "acknowledged":
            text = f"Acknowledged by {_escape(incident.acknowledged_by or 'someone')}" + (
                f" at {when(incident.acknowledged_at)}" if incident.acknowledged_at else ""
            )
            pending = incident.sev_channel is SevChannel.SEV1 and incident.escalated_at is None
            text += "; no escalation will follow." if pending else "."
            blocks.append(_section(f":white_check_mark: {text}"))
            update = _first_post_update(deliver, thread_ts, options)
        case IncidentAction.UPDATE if deliver.step == "renotify":
            mention = f"<@{options.oncall_user}> " if options.oncall_user else ""
            waited = duration(
                (incident.renotified_at or incident.last_seen_at) - incident.opened_at
            )
            text = f"{mention}Not acknowledged after {waited}: this SEV1 still needs a human ack."
            blocks.append(_section(f":bell: {text}"))
            blocks.append(_acknowledge_button(f"incident:{incident.incident_id}", resolvable=True))
        case IncidentAction.RESOLVE if deliver.step == "resolved":
            text = f"Resolved by {_escape(incident.resolved_by or 'someone')}" + (
                f" at {when(incident.resolved_at)}" if incident.resolved_at else ""
            )
            blocks.append(_section(f":white_check_mark: {text}."))
            if incident.resolution_note:
                blocks.append(_context(f"note: {_escape(incident.resolution_note)}"))
                text += f": {_escape(incident.resolution_note)}"
            update = _first_post_update(deliver, thread_ts, options)
        case IncidentAction.UPDATE:
            text = (
                f"Seen again: {plural(incident.event_count, 'event')}, last at "
                f"{when(incident.last_seen_at)}"
            )
            blocks.append(_section(f":repeat: {text}"))
            if incident.escalation_recommended is not None:
                line = f"escalation_recommended: {incident.escalation_recommended.value}"
                blocks.append(_section(f":arrow_double_up: `{line}` (a human must acknowledge)"))
                text += f" · {line}"
        case IncidentAction.RESOLVE:
            at = incident.resolved_at or incident.last_seen_at
            text = (
                f"Resolved at {when(at)} after {plural(incident.event_count, 'event')}, "
                f"open {duration(at - incident.opened_at)}"
            )
            if deliver.step == "resolved" and incident.resolved_by:
                text += f"; resolved by {_escape(incident.resolved_by)}"
            blocks.append(_section(f":white_check_mark: {text}"))
        case IncidentAction.AUDIT:
            text = f"audit: {scrub(incident.title)}"
            blocks.append(_section(text))
    if thread_ts is None and deliver.action is not IncidentAction.OPEN:
        # The first message never landed: say what this is about at the top level.
        blocks.insert(0, _section(f"[{channel_label}] {link}\n{facts}"))
        text = f"[{channel_label}] {scrub(incident.title)}: {text}"
    if incident.freescout_conversation_id is not None:  # the ticket trail's conversation
        blocks.append(
            _context(f":ticket: FreeScout conversation {incident.freescout_conversation_id}")
        )
    if deliver.late:  # held for the sink's verification: say how late, on the phone too
        blocks.append(_context(f":hourglass: {deliver.late}"))
        text += f" ({deliver.late})"
    return SlackMessage(
        channel=deliver.destination.target,
        text=text,
        blocks=tuple(blocks),
        thread_ts=thread_ts,
        update=update,
        planned_at=deliver.planned_at,
    )


def _posture(
    incident: Incident, options: SlackOptions, playbook_note: str | None = None
) -> list[dict[str, Any]]:
    what = f"incident:{incident.incident_id}"
    sop = (
        f":sos: <{options.emergency_sop_url}|Emergency SOP>. "
        if incident.sev_channel is SevChannel.SEV1
        else ""
    )
    if incident.resolved_by is not None:  # a human resolved it (Slack, PagerDuty)
        at = f" at {when(incident.resolved_at)}" if incident.resolved_at else ""
        return [
            _section(f"{sop}:white_check_mark: Resolved by {_escape(incident.resolved_by)}{at}.")
        ]
    if playbook_note is not None and incident.sev_channel is not SevChannel.SEV1:
        mention = (
            f"<@{options.oncall_user}> "
            if options.oncall_user and incident.sev_channel is SevChannel.SEV2
            else ""
        )
        return [_section(f"{mention}{_escape(playbook_note)}")]
    match incident.sev_channel:
        case SevChannel.SEV1 if incident.acknowledged_at is not None:
            by = _escape(incident.acknowledged_by or "someone")
            return [
                _section(
                    f"{sop}:white_check_mark: Acknowledged by {by} at "
                    f"{when(incident.acknowledged_at)}; no autonomous action."
                ),
                {"type": "actions", "elements": [_resolve_button(what)]},
            ]
        case SevChannel.SEV1:
            return [
                _section(f"{sop}Waiting for a human ack; no autonomous action."),
                _acknowledge_button(what, resolvable=True),
            ]
        case _ if incident.acknowledged_at is not None:  # acknowledged in PagerDuty
            by = _escape(incident.acknowledged_by or "someone")
            return [
                _section(
                    f":white_check_mark: Acknowledged by {by} at {when(incident.acknowledged_at)}."
                )
            ]
        case SevChannel.SEV2:
            mention = f"<@{options.oncall_user}> " if options.oncall_user else ""
            return [_section(f"{mention}{NEEDS_A_HUMAN}")]
        case SevChannel.SEV2_5:
            return [_section(NEEDS_A_HUMAN)]
        case SevChannel.SEV3:
            return [_context(FOR_THE_RECORD)]
        case None:
            return []
