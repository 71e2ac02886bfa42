"""The rotation actor: the one owner of the versioned secret store and of the open
rotation (``eyetok rotate``, the quarterly drill's four credential classes, in series).

``RotateSink`` adds version N+1 of a sink's credential (sealed in the history and the
Postgres mirror; the current and the previous two versions are kept), marks the sink's
verification ``rotated`` (the delivery gate refuses it from then on) and proves the new
credential with that sink type's handshake:

- Slack: the operator's new bot token is put in use and the Slack handshake runs again
  (the workspace of the new token, the nonce DM);
- webhook: a new signing secret is made and put in use, the previous one signing beside
  it for 30 days; the DNS TXT handshake runs again;
- email: a new DKIM key is made under a new selector; the record to publish is answered
  and looked up (DNS TXT) until it appears, and only then does mail switch to the new key;
- PagerDuty: the OAuth authorization (PKCE) runs again for a new refresh token.

The rotation is ``open`` until the sink's verification is live again after it started
(it is then ``done``) or until ``RollBackRotation`` puts version N back in one step,
with the verification it had. A second rotation while one is open is refused (409).
Every step is audited; no value ever reaches a log line or the audit log.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import assert_never

import duckdb
import msgspec
import trio

from actors.credential_versions import opened, previous_of, with_changes
from actors.sinks.webhook import verify as txt
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.errors import ConfigError, StateError
from eyetok.messages import (
    AuditRecorded,
    CredentialVersionInUse,
    FlushHistory,
    HandshakeAnswer,
    HistoryMessage,
    RefreshTokenRequested,
    Reply,
    RollBackRotation,
    RotateSink,
    RotationAnswer,
    RotationMessage,
    RotationStanding,
    StartVerification,
    TenantsMessage,
    VerificationMessage,
)
from eyetok.rotation import material
from eyetok.rotation.sealing import KEY_ENV, Sealer
from eyetok.sinks.email import EmailSinkConfig
from eyetok.verification import Verification, VerificationStatus
from state.history import credential_store as cs
from state.history import queries
from state.history.store import HistoryStore
from state.mirror import credential_store as mirror

ROTATING = ("slack", "webhook", "email", "pagerduty")
_prior = msgspec.json.Decoder(Verification | None)


@dataclass(frozen=True)
class RotationDeps:
    settings: Settings  # the file's: which sinks exist and what they are
    store: HistoryStore
    sealer: Sealer | None  # None: EYETOK_SECRETS_KEY unset, every rotation refused
    database_url: str | None = None  # the mirror of the secret store
    # where DKIM records are looked up; None: the host's resolver, read at the first lookup
    dns_server: tuple[str, int] | None = ("127.0.0.1", 53)
    txt_every_s: float = 300.0
    txt_for_s: float = 86_400.0


async def run_rotation(
    deps: RotationDeps,
    inbox: trio.MemoryReceiveChannel[RotationMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    to_tenants: trio.MemorySendChannel[TenantsMessage],
    to_verification: trio.MemorySendChannel[VerificationMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("rotation")
    store = deps.store
    settings = deps.settings
    await store.write(cs.create)
    rows: list[cs.StoredVersion] = await store.read(cs.versions)
    still_open = [r for r in await store.read(cs.rotations) if r.state == "open"]
    current_rotation: cs.StoredRotation | None = still_open[-1] if still_open else None
    dkim_watch: trio.CancelScope | None = None

    async def audit(tenant: str, event: str, detail: dict[str, object]) -> None:
        await to_history.send(
            AuditRecorded(at=clock.now(), tenant=tenant, event=event, detail=json.dumps(detail))
        )

    async def save(changed: list[cs.StoredVersion], rotation: cs.StoredRotation | None) -> None:
        """The history first (one transaction), then the mirror (best effort: Postgres
        down never stops a rotation; the next change writes the rows again)."""
        nonlocal rows, current_rotation

        def put(con: duckdb.DuckDBPyConnection) -> None:
            cs.put_versions(con, changed)
            if rotation is not None:
                cs.put_rotation(con, rotation)

        await store.write(put)
        rows = await store.read(cs.versions)
        if rotation is not None:
            current_rotation = rotation if rotation.state == "open" else None
        if deps.database_url is not None:
            sink = changed[0].sink_id if changed else rotation.sink_id if rotation else ""
            every = [v for v in rows if v.sink_id == sink]
            try:
                await trio.to_thread.run_sync(mirror.save, deps.database_url, every, rotation)
            except StateError as exc:
                logger.warning("secret_store_not_mirrored", sink=sink, error=str(exc))

    async def standing(
        sink_id: str,
        status: VerificationStatus,
        by: str,
        detail: str,
        **fields: object,
    ) -> Verification:
        said: Reply[Verification] = Reply()
        await to_verification.send(
            RotationStanding(
                sink_id=sink_id,
                status=status,
                approved_by=by,
                detail=detail,
                reply=said,
                **fields,  # type: ignore[arg-type]
            )
        )
        return await said.wait()

    async def put_in_use(sink_id: str, current: cs.StoredVersion | None) -> None:
        """Every actor following the settings uses ``current`` from now on."""
        assert deps.sealer is not None
        now = clock.now()
        done: Reply[bool] = Reply()
        await to_tenants.send(
            CredentialVersionInUse(
                sink_id=sink_id,
                current=opened(deps.sealer, current) if current is not None else None,
                previous=_previous_material(sink_id, current),
                since=current.changed_at if current is not None else now,
                reply=done,
            )
        )
        await done.wait()

    def _previous_material(sink_id: str, current: cs.StoredVersion | None) -> dict[str, str] | None:
        assert deps.sealer is not None
        previous = previous_of(rows, sink_id, current)
        return opened(deps.sealer, previous) if previous is not None else None

    async def latest_verification(sink_id: str) -> Verification | None:
        flushed: Reply[bool] = Reply()
        await to_history.send(FlushHistory(reply=flushed))
        await flushed.wait()
        return (await store.read(queries.latest_verifications)).get(sink_id)

    async def settle() -> None:
        """Close the open rotation if its sink's verification is live again since."""
        rotation = current_rotation
        if rotation is None:
            return
        found = await latest_verification(rotation.sink_id)
        if (
            found is not None
            and found.status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
            and found.handshake_at >= rotation.started_at
        ):
            if rotation.sink_type == "pagerduty":
                await take_refresh_token(rotation)
            ended = msgspec.structs.replace(
                rotation,
                state="done",
                ended_at=found.handshake_at,
                ended_by=found.verified_by or "handshake",
                detail=f"version {rotation.to_version} proven ({found.verified_by})",
            )
            await save([], ended)
            await audit(
                rotation.tenant_id,
                "credential_rotation_done",
                {"sink": rotation.sink_id, "version": rotation.to_version},
            )
            logger.info("credential_rotation_done", sink=rotation.sink_id)

    async def refresh_token(sink_id: str) -> str:
        held: Reply[str] = Reply()
        await to_verification.send(RefreshTokenRequested(sink_id=sink_id, reply=held))
        return await held.wait()

    async def take_refresh_token(rotation: cs.StoredRotation) -> None:
        """The new authorization's refresh token becomes the rotation's version."""
        assert deps.sealer is not None
        token = await refresh_token(rotation.sink_id)
        if not token:
            return
        await switch_to(rotation, {"refresh_token": token})

    def refused(status: int, sink_id: str, why: str) -> RotationAnswer:
        return RotationAnswer(status=status, sink_id=sink_id, message=why)

    async def rotate(message: RotateSink, nursery: trio.Nursery) -> RotationAnswer:
        nonlocal dkim_watch
        sink_id = message.sink_id
        config = settings.sinks.get(sink_id)
        if config is None:
            return refused(404, sink_id, f"no sink named {sink_id!r} in the configuration")
        kind = sink_type_of(config)
        if message.sink_type != kind:
            return refused(
                400, sink_id, f"sink {sink_id!r} is a {kind} sink, not {message.sink_type}"
            )
        if deps.sealer is None:
            return refused(
                503, sink_id, f"{KEY_ENV} is not set: the secret store cannot seal a credential"
            )
        await settle()
        if current_rotation is not None:
            r = current_rotation
            return refused(
                409,
                sink_id,
                f"the rotation of sink {r.sink_id!r} (version {r.from_version} -> "
                f"{r.to_version}, by {r.started_by} at {r.started_at.isoformat()}) is still "
                f"open: finish its handshake or run `eyetok rotate rollback --sink {r.sink_id}`",
            )
        if kind == "slack":
            if not message.token:
                return refused(400, sink_id, "a Slack rotation needs the new bot token")
            try:
                fresh = material.slack_material(message.token)
            except ConfigError as exc:
                return refused(400, sink_id, f"the new token {exc.args[0].split(': ', 1)[1]}")
        now = clock.now()
        mine = [v for v in rows if v.sink_id == sink_id]
        current = next((v for v in mine if v.state == "current"), None)
        changed: list[cs.StoredVersion] = []
        if current is None:
            first = material.material_now(settings, sink_id)
            if kind == "pagerduty":
                token = await refresh_token(sink_id)
                first = {"refresh_token": token} if token else None
            if first is not None:
                current = cs.StoredVersion(
                    sink_id=sink_id,
                    version=1,
                    sink_type=kind,
                    tenant_id=config.tenant,
                    state="current",
                    sealed=deps.sealer.seal(first),
                    created_at=now,
                    created_by="environment",
                    changed_at=now,
                )
                mine.append(current)
        version = max((v.version for v in mine), default=0) + 1
        match kind:
            case "slack":
                pass
            case "webhook":
                fresh = material.webhook_material()
            case "email":
                assert isinstance(config, EmailSinkConfig)
                fresh = material.dkim_material(config.dkim_domain, now, version)
            case "pagerduty":
                fresh = {}  # the token comes with the authorization (see settle)
            case _:
                return refused(400, sink_id, f"{kind} credentials do not rotate")
        # mail switches once its DKIM record is found; PagerDuty once it is authorized
        switch_now = kind not in ("email", "pagerduty")
        new = cs.StoredVersion(
            sink_id=sink_id,
            version=version,
            sink_type=kind,
            tenant_id=config.tenant,
            state="current" if switch_now else "pending",
            sealed=deps.sealer.seal(fresh),
            created_at=now,
            created_by=message.requested_by,
            changed_at=now,
        )
        if current is not None:
            changed.append(
                msgspec.structs.replace(current, state="previous", changed_at=now)
                if switch_now
                else current
            )
        changed.append(new)
        prior = await latest_verification(sink_id)
        rotation = cs.StoredRotation(
            rotation_id="rot_" + secrets.token_hex(8),
            sink_id=sink_id,
            sink_type=kind,
            tenant_id=config.tenant,
            from_version=current.version if current is not None else 0,
            to_version=version,
            state="open",
            started_at=now,
            started_by=message.requested_by,
            prior_json=msgspec.json.encode(prior).decode(),
            detail="",
        )
        changed += cs.kept(with_changes(rows, changed), sink_id, now)
        await save(changed, rotation)
        what = {
            "sink": sink_id,
            "sink_type": kind,
            "from_version": rotation.from_version,
            "to_version": version,
            "by": message.requested_by,
        }
        await audit(config.tenant, "credential_rotation_started", what)
        logger.info("credential_rotation_started", **what)
        await standing(
            sink_id,
            VerificationStatus.ROTATED,
            message.requested_by,
            f"credential rotated to version {version} by {message.requested_by}; "
            "delivery resumes once the new one is proven",
        )
        if kind == "email":
            assert isinstance(config, EmailSinkConfig)
            name, value = material.dkim_record(fresh)
            dkim_watch = trio.CancelScope()
            nursery.start_soon(watch_dkim, rotation, name, value, dkim_watch)
            return RotationAnswer(
                status=200,
                sink_id=sink_id,
                rotation_id=rotation.rotation_id,
                version=version,
                publish={"name": name, "type": "TXT", "value": value},
                message=f"Publish the DNS TXT record {name} (value below); EyeTok looks it "
                f"up every {deps.txt_every_s:.0f}s for {deps.txt_for_s / 3600:.0f}h and "
                f"switches mail to selector {fresh['selector']} once it is there.",
            )
        if switch_now:
            await put_in_use(sink_id, new)
        handshake = await handshake_again(sink_id, message.requested_by)
        return RotationAnswer(
            status=200,
            sink_id=sink_id,
            rotation_id=rotation.rotation_id,
            version=version,
            handshake=handshake,
            secret=fresh["secret"] if kind == "webhook" else None,
            message=f"Version {version} of sink {sink_id} is in place; deliveries wait for "
            f"its handshake. {handshake.message}"
            if handshake.ok
            else f"Version {version} of sink {sink_id} is in place but its handshake failed: "
            f"{handshake.message}. Deliveries are held; `eyetok rotate rollback --sink "
            f"{sink_id}` puts version {rotation.from_version} back.",
        )

    async def handshake_again(sink_id: str, by: str) -> HandshakeAnswer:
        answer: Reply[HandshakeAnswer] = Reply()
        await to_verification.send(
            StartVerification(sink_id=sink_id, requested_by=f"rotation:{by}", reply=answer)
        )
        return await answer.wait()

    async def watch_dkim(
        rotation: cs.StoredRotation, name: str, value: str, scope: trio.CancelScope
    ) -> None:
        """Look the new selector's record up until it is published, then switch."""
        host, port = txt.nameserver(deps.dns_server)
        deadline = trio.current_time() + deps.txt_for_s
        problem = "not published yet"
        with scope:
            while trio.current_time() < deadline:
                try:
                    found = await txt.lookup_txt(name, nameserver=host, port=port)
                except txt.DnsLookupError as exc:
                    found, problem = [], str(exc)
                if material.publishes(found, value):
                    await dkim_published(rotation, name)
                    return
                await trio.sleep(deps.txt_every_s)
            await standing(
                rotation.sink_id,
                VerificationStatus.FAILED,
                "rotation:dns",
                f"DKIM record {name} not found within {deps.txt_for_s / 3600:g}h ({problem}); "
                f"`eyetok rotate rollback --sink {rotation.sink_id}` keeps the old key",
            )
            logger.warning("dkim_record_missing", sink=rotation.sink_id, record=name)

    async def switch_to(
        rotation: cs.StoredRotation, fresh: dict[str, str] | None = None
    ) -> cs.StoredVersion:
        """The rotation's pending version becomes current (``fresh``: its value, known
        only now), the current one previous."""
        assert deps.sealer is not None
        now = clock.now()
        changed = [
            msgspec.structs.replace(v, state="previous", changed_at=now)
            for v in rows
            if v.sink_id == rotation.sink_id and v.state == "current"
        ]
        new = next(
            v for v in rows if v.sink_id == rotation.sink_id and v.version == rotation.to_version
        )
        sealed = deps.sealer.seal(fresh) if fresh is not None else new.sealed
        new = msgspec.structs.replace(new, state="current", sealed=sealed, changed_at=now)
        changed.append(new)
        changed += cs.kept(with_changes(rows, changed), rotation.sink_id, now)
        await save(changed, None)
        return new

    async def dkim_published(rotation: cs.StoredRotation, name: str) -> None:
        new = await switch_to(rotation)
        await put_in_use(rotation.sink_id, new)
        await standing(
            rotation.sink_id,
            VerificationStatus.LIVE,
            "rotation:dns",
            f"DKIM selector of version {rotation.to_version} published at {name}",
            verified_by=f"dns:{name}",
        )
        await settle()

    async def roll_back(message: RollBackRotation) -> RotationAnswer:
        nonlocal dkim_watch
        sink_id = message.sink_id
        await settle()
        rotation = current_rotation
        if rotation is None or rotation.sink_id != sink_id:
            return refused(409, sink_id, f"no rotation of sink {sink_id!r} is open")
        assert deps.sealer is not None
        if dkim_watch is not None:
            dkim_watch.cancel()
            dkim_watch = None
        now = clock.now()
        changed: list[cs.StoredVersion] = []
        back: cs.StoredVersion | None = None
        for v in rows:
            if v.sink_id != sink_id:
                continue
            if v.version == rotation.to_version:
                changed.append(
                    msgspec.structs.replace(v, state="rolled_back", sealed=None, changed_at=now)
                )
            elif v.version == rotation.from_version:
                back = msgspec.structs.replace(v, state="current", changed_at=v.created_at)
                changed.append(back)
        ended = msgspec.structs.replace(
            rotation,
            state="rolled_back",
            ended_at=now,
            ended_by=message.requested_by,
            detail=f"rolled back to version {rotation.from_version}",
        )
        await save(changed, ended)
        if rotation.sink_type != "pagerduty":
            await put_in_use(sink_id, back)
        prior = _prior.decode(rotation.prior_json)
        said = f"rolled back to version {rotation.from_version} by {message.requested_by}"
        if prior is not None and prior.status in (
            VerificationStatus.LIVE,
            VerificationStatus.RENEWED,
        ):
            await standing(
                sink_id,
                VerificationStatus.LIVE,
                message.requested_by,
                f"{said} (proven {prior.handshake_at.isoformat(timespec='seconds')})",
                verified_by=prior.verified_by,
                expires_at=prior.expires_at,
            )
        else:
            await standing(
                sink_id,
                VerificationStatus.PENDING,
                message.requested_by,
                f"{said}; it was not proven before the rotation: run `eyetok verify {sink_id}`",
            )
        what = {
            "sink": sink_id,
            "from_version": rotation.to_version,
            "to_version": rotation.from_version,
            "by": message.requested_by,
        }
        await audit(rotation.tenant_id, "credential_rotation_rolled_back", what)
        logger.info("credential_rotation_rolled_back", **what)
        return RotationAnswer(
            status=200,
            sink_id=sink_id,
            rotation_id=rotation.rotation_id,
            version=rotation.from_version,
            message=f"Sink {sink_id} is back on version {rotation.from_version}.",
        )

    def resume(nursery: trio.Nursery) -> None:
        """A restart mid-rotation: an email key still waiting for its DNS record is
        looked up again (the other handshakes resume in the verification actor)."""
        nonlocal dkim_watch
        rotation = current_rotation
        if rotation is None or rotation.sink_type != "email" or deps.sealer is None:
            return
        pending = next(
            (v for v in rows if v.sink_id == rotation.sink_id and v.version == rotation.to_version),
            None,
        )
        fresh = opened(deps.sealer, pending) if pending is not None else None
        if fresh is None or pending is None or pending.state != "pending":
            return
        name, value = material.dkim_record(fresh)
        dkim_watch = trio.CancelScope()
        nursery.start_soon(watch_dkim, rotation, name, value, dkim_watch)
        logger.info("dkim_watch_resumed", sink=rotation.sink_id, record=name)

    async with trio.open_nursery() as nursery:
        resume(nursery)
        task_status.started()
        async for message in inbox:
            match message:
                case RotateSink():
                    message.reply.send(await rotate(message, nursery))
                case RollBackRotation():
                    message.reply.send(await roll_back(message))
                case _:
                    assert_never(message)
