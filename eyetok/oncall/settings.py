"""Where the on-call rotation's two sides are, from the environment (or the vault):

- ``EYETOK_SCIM_URL`` (the IdP's SCIM 2.0 base URL) and ``EYETOK_SCIM_TOKEN`` (bearer);
- ``EYETOK_ONCALL_GROUP``: the on-call group's displayName (default ``eyetok-oncall``);
- ``PAGERDUTY_API_TOKEN`` (REST API key), ``PAGERDUTY_SCHEDULE_ID``, ``PAGERDUTY_FROM``
  (the email PagerDuty records as making the changes), ``PAGERDUTY_API_URL`` (default
  ``https://api.pagerduty.com``).

None of them set: no on-call sync. Some but not all: a :class:`ConfigError` naming the
first one missing. Imported by eyetok/config.py, so it imports nothing of EyeTok's but
the errors.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from eyetok.errors import ConfigError

REQUIRED = (
    "EYETOK_SCIM_URL",
    "EYETOK_SCIM_TOKEN",
    "PAGERDUTY_API_TOKEN",
    "PAGERDUTY_SCHEDULE_ID",
    "PAGERDUTY_FROM",
)
SYNC_EVERY_S = 900.0  # the IdP recipe's cron: every 15 minutes


class OncallSource(msgspec.Struct, frozen=True, kw_only=True):
    scim_url: str
    scim_token: str
    group: str
    pagerduty_url: str
    pagerduty_token: str
    schedule_id: str
    pagerduty_from: str
    every_s: float = SYNC_EVERY_S

    def __repr__(self) -> str:  # no token in a traceback
        return f"OncallSource(scim_url={self.scim_url!r}, schedule_id={self.schedule_id!r})"


def oncall_from(env: Mapping[str, str]) -> OncallSource | None:
    present = [name for name in REQUIRED if env.get(name)]
    if not present:
        return None
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise ConfigError(
            missing[0],
            f"the on-call sync needs {', '.join(REQUIRED)} (set: {', '.join(present)})",
        )
    for name in ("EYETOK_SCIM_URL", "PAGERDUTY_API_URL"):
        url = env.get(name, "")
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(name, f"{url!r} is not an http(s) URL")
    return OncallSource(
        scim_url=env["EYETOK_SCIM_URL"].rstrip("/"),
        scim_token=env["EYETOK_SCIM_TOKEN"],
        group=env.get("EYETOK_ONCALL_GROUP") or "eyetok-oncall",
        pagerduty_url=(env.get("PAGERDUTY_API_URL") or "https://api.pagerduty.com").rstrip("/"),
        pagerduty_token=env["PAGERDUTY_API_TOKEN"],
        schedule_id=env["PAGERDUTY_SCHEDULE_ID"],
        pagerduty_from=env["PAGERDUTY_FROM"],
    )
