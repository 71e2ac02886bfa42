"""Reading the credentials again on SIGHUP and putting them in use.

The vault (or, without one, the environment) is read in a worker thread; the tenants actor,
which owns the settings every other actor follows, takes the new credentials and passes
them on (the delivery actor builds a new client for a sink whose credential changed, from
its next delivery on). A vault that does not answer raises :class:`ConfigError` and the
credentials in use stay in use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from actors.credential_versions import sealer_of, stored_credentials
from eyetok import log, vault
from eyetok.clock import Clock
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import CredentialsSwapped, TenantsMessage
from schedules.credentials import credentials_of
from state.history.store import HistoryStore


def credential_reloader(
    to_tenants: trio.MemorySendChannel[TenantsMessage],
    store: HistoryStore,
    clock: Clock,
    live: LiveCredentials,
) -> Callable[[str], Awaitable[dict[str, str]]]:
    """``reload(why)``: read the credentials again, swap them in (the sinks' through the
    tenants actor; the root token and the Slack signing secret in ``live``, which the HTTP
    app and the people actor read at each request), return them by name. A credential
    rotated through the secret store (``eyetok rotate``) stays over them."""
    logger = log.get("vault")

    async def reload(why: str) -> dict[str, str]:
        loaded = await trio.to_thread.run_sync(vault.load)
        logger.info("credentials_loaded", why=why, **vault.origins_line(loaded))
        fresh = await stored_credentials(
            loaded.settings, store, sealer_of(loaded.settings), clock.now()
        )
        await to_tenants.send(CredentialsSwapped(settings=fresh, why=why))
        swapped = live.swap(fresh)
        if swapped:
            logger.info("http_credentials_swapped", why=why, names=swapped)
        return credentials_of(fresh)

    return reload
