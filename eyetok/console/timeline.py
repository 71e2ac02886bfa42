"""One moment of an incident's timeline, as the console shows it."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Moment(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    kind: str  # signal | routing | notification | playbook | decision | audit
    what: str
    detail: str
    outcome: str = ""  # a notification's: delivered, refused, dead, pending ...
