"""The on-call actor: the IdP-bound rotation (the IdP recipe, every 15 minutes, and
``eyetok oncall sync``).

One sync: read the on-call group over SCIM, refuse any member whose only role is
``root_operator`` (reported, audited, never put on call), find or create each wanted
member's PagerDuty user, and set the schedule's first layer to them (kept users in their
turn order, new ones after) only when it differs, so a second sync changes nothing. The
diff is logged and audited. Then whoever PagerDuty says is on call now becomes the one
SEV2 posts and SEV1 re-notifications mention (their Slack id from the IdP).

Syncs run one at a time; a failed one (IdP or PagerDuty down) changes nothing, is logged
and audited, and the next slot tries again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import httpx
import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.messages import (
    AuditRecorded,
    HistoryMessage,
    OnCallChanged,
    OncallMessage,
    OncallSyncAnswer,
    TenantsMessage,
)
from eyetok.oncall.pagerduty import PagerDutyApiError, PagerDutyRest
from eyetok.oncall.plan import layer_users, plan
from eyetok.oncall.roles import ROOT_OPERATOR, RoleSource
from eyetok.oncall.settings import OncallSource
from eyetok.tls import OnDemandClient


@dataclass(frozen=True)
class OncallDeps:
    source: OncallSource
    roles: RoleSource  # asked before each sync: the people actor's bindings, or the IdP's
    operator_tenant: str
    http_transport: httpx.AsyncBaseTransport | None = None


def next_slot(now: datetime, every_s: float) -> datetime:
    """The next boundary of ``every_s`` seconds after ``now`` (:00, :15, :30, :45)."""
    epoch = now.timestamp()
    return datetime.fromtimestamp((epoch // every_s + 1) * every_s, tz=now.tzinfo)


async def run_oncall(
    deps: OncallDeps,
    inbox: trio.MemoryReceiveChannel[OncallMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    to_tenants: trio.MemorySendChannel[TenantsMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # scim2-models builds its pydantic models on import (seconds on a busy dyno): loaded
    # only where the on-call sync is configured and runs
    from eyetok.oncall.scim import IdpError, oncall_group

    logger = log.get("oncall")
    source = deps.source
    one_at_a_time = trio.Lock()
    mentioned: str | None = None

    async def audit(event: str, detail: dict[str, object]) -> None:
        await to_history.send(
            AuditRecorded(
                at=clock.now(),
                tenant=deps.operator_tenant,
                event=event,
                detail=json.dumps(detail, sort_keys=True),
            )
        )

    async def sync(client: httpx.AsyncClient, by: str) -> OncallSyncAnswer:
        nonlocal mentioned
        pd = PagerDutyRest(
            client, source.pagerduty_url, source.pagerduty_token, source.pagerduty_from
        )
        try:
            members = await oncall_group(client, source.scim_url, source.scim_token, source.group)
            decided = plan(members, await deps.roles())
            layer = await pd.layer(source.schedule_id)
            wanted_ids: list[str] = []
            created: list[str] = []
            by_id: dict[str, str] = {}  # PagerDuty user id -> email
            slack_of: dict[str, str] = {}  # PagerDuty user id -> Slack id
            for member in decided.wanted:
                user = await pd.user_by_email(member.email)
                if user is None:
                    user = await pd.create_user(member.email, member.name)
                    created.append(member.email)
                wanted_ids.append(user.user_id)
                by_id[user.user_id] = member.email
                if member.slack_user:
                    slack_of[user.user_id] = member.slack_user
            users = layer_users(layer.user_ids, wanted_ids)
            removed_ids = [u for u in layer.user_ids if u not in users]
            removed = [(await pd.user(u)).email or u for u in removed_ids]
            added = [by_id[u] for u in users if u not in layer.user_ids]
            if users != layer.user_ids:
                await pd.set_layer_users(layer, users)
            on_call = await pd.on_call_now(source.schedule_id)
        except (IdpError, PagerDutyApiError) as exc:
            logger.error("oncall_sync_failed", error=str(exc), by=by)
            await audit("oncall_sync_failed", {"by": by, "error": str(exc)})
            return OncallSyncAnswer(status=502, message=f"on-call sync failed: {exc}")
        refused = tuple(m.email for m in decided.refused)
        for member in decided.refused:
            logger.warning(
                "oncall_member_refused",
                who=member.email,
                why=f"their only role is {ROOT_OPERATOR}: switch hats, or bind a responder role",
            )
        diff: dict[str, object] = {
            "by": by,
            "group": source.group,
            "schedule": source.schedule_id,
            "added": added,
            "removed": removed,
            "created": created,
            "refused": list(refused),
            "inactive": [m.email for m in decided.inactive],
        }
        changed = bool(added or removed)
        await audit("oncall_synced", diff)
        if refused:
            await audit("oncall_refused", {"refused": list(refused), "role": ROOT_OPERATOR})
        logger.info("oncall_synced", changed=changed, **diff)
        current = by_id.get(on_call) if on_call is not None else None
        slack_user = slack_of.get(on_call) if on_call is not None else None
        if slack_user is not None and slack_user != mentioned:
            await to_tenants.send(OnCallChanged(slack_user=slack_user, who=current or ""))
            mentioned = slack_user
        said = "changed the schedule" if changed else "nothing to change"
        return OncallSyncAnswer(
            status=200,
            message=f"on-call sync of {source.group!r} -> schedule {source.schedule_id}: {said}"
            + (f"; refused (only {ROOT_OPERATOR}): {', '.join(refused)}" if refused else ""),
            added=tuple(added),
            removed=tuple(removed),
            created=tuple(created),
            refused=refused,
            on_call=current,
        )

    async def locked_sync(client: OnDemandClient, by: str) -> OncallSyncAnswer:
        async with one_at_a_time:
            return await sync(client(), by)

    async def every_slot(client: OnDemandClient) -> None:
        while True:
            await clock.sleep_until(next_slot(clock.now(), source.every_s))
            await locked_sync(client, "schedule:oncall-sync")

    async with (
        OnDemandClient(transport=deps.http_transport, trust_env=False) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(every_slot, client)
        task_status.started()
        async for message in inbox:
            message.reply.send(await locked_sync(client, message.requested_by))
        nursery.cancel_scope.cancel()
