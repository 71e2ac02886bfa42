"""When an incident whose source never says "resolved" falls quiet (owned by the
incidents actor, which calls it).

A Heroku log drain reports errors, never their end: an H12 storm is one incident whose
count rises while lines come, and it is over when no line has come for the tenant's
``heroku_drain.quiet_s``. The due time is derived from the incident's snapshot
(``last_seen_at`` + ``quiet_s``), which is journalled with every update, so after a restart
or on a fresh dyno the rehydrated incidents resolve when they would have; nothing here is
a timer task. The resolve is an ordinary resolve signal
(:func:`eyetok.sources.heroku_logs.quiet_resolve`) that goes through the same decision,
journal and sinks as any other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from actors.due_times import DueTimes
from eyetok.config import Settings
from eyetok.http.hooks import new_signal_id
from eyetok.incidents import IncidentKey
from eyetok.messages import Incident, Signal
from eyetok.sources import heroku_logs


class QuietPeriods:
    """The open drain incidents and when each falls quiet."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._due: DueTimes[IncidentKey] = DueTimes()

    def quiet_s(self, tenant_id: str) -> float | None:
        tenant = self._settings.tenants.get(tenant_id)
        drain = tenant.heroku_drain if tenant is not None else None
        return drain.quiet_s if drain is not None else None

    def track(self, key: IncidentKey, incident: Incident | None) -> None:
        """Note ``incident``'s new snapshot (None: it is no longer open)."""
        quiet_s = self.quiet_s(key[0])
        if incident is None or quiet_s is None or not heroku_logs.is_drain_key(key[1]):
            self._due.discard(key)
            return
        self._due.set(key, incident.last_seen_at + timedelta(seconds=quiet_s))

    def next_due(self) -> datetime | None:
        """When the next drain incident falls quiet (None: none is open)."""
        return self._due.next_due()

    def fall_due(self, open_incidents: dict[IncidentKey, Incident], now: datetime) -> list[Signal]:
        """The resolves of the incidents quiet at ``now``."""
        resolves: list[Signal] = []
        for key in self._due.due_at(now):
            incident = open_incidents.get(key)
            quiet_s = self.quiet_s(key[0])
            if incident is None or quiet_s is None:
                self._due.discard(key)
                continue
            resolves.append(
                heroku_logs.quiet_resolve(incident, now=now, quiet_s=quiet_s, new_id=new_signal_id)
            )
        return resolves
