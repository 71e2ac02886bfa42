"""Whether Postgres refuses the role in ``DATABASE_URL``, told apart from Postgres being
down.

Postgres down never stops routing (the mirror catches up), but a role Postgres refuses
(authentication failed, the role does not exist, no ``pg_hba.conf`` entry for it) never
heals by waiting: in postgres durability the daemon cannot accept anything, so start-up
fails with one line naming ``DATABASE_URL``; in disk durability the daemon starts
degraded and its log says the role was refused.
"""

from __future__ import annotations

import re

# libpq's words for a refusal of the role (connection errors carry no SQLSTATE in psycopg)
_REFUSED = re.compile(
    r"password authentication failed|authentication failed for user|"
    r'role "[^"]*" does not exist|no pg_hba\.conf entry|is not permitted to log in',
    re.IGNORECASE,
)


def is_role_refusal(text: str) -> bool:
    """``text`` (a Postgres or libpq error) says the server refused the role."""
    return _REFUSED.search(text) is not None


def role_refusal(dsn: str, *, connect_timeout_s: int = 5) -> str | None:
    """Blocking (run it in a worker thread): connect once with ``dsn``. Postgres's words
    when it refuses the role; None when it accepts it or cannot be reached at all."""
    import psycopg

    try:
        with psycopg.connect(
            dsn, connect_timeout=connect_timeout_s, application_name="eyetok-startup"
        ):
            return None
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        return text if is_role_refusal(text) else None
