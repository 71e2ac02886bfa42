"""One lazily opened Postgres connection, for a mirror table an actor keeps (the digest
receipts, the mutes): opened on first use, dropped after a failure so the next call
connects again. Blocking; used from one worker thread at a time."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # psycopg is imported on first use (tests/test_lazy_imports.py)
    import psycopg
    from psycopg.rows import TupleRow


class LazyConnection:
    def __init__(self, dsn: str, application_name: str) -> None:
        self.dsn = dsn
        self._name = application_name
        self._conn: psycopg.Connection[TupleRow] | None = None

    def get(self) -> psycopg.Connection[TupleRow]:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn, autocommit=False, connect_timeout=5, application_name=self._name
            )
        return self._conn

    def discard(self) -> None:
        import psycopg

        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
