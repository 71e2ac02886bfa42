"""Postgres refusing the role in ``DATABASE_URL`` (issue 14 item 6), through ``eyetok run``:
in postgres durability a start-up failure (one ``startup_failed`` line, exit 2); in disk
durability the daemon starts, degraded, and its log says the role was refused."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from tests.e2e.daemon import DaemonProcess


def _refused_dsn(pg_dsn: str) -> str:
    # the real server at 127.0.0.1:5432, a role that does not exist there
    return make_conninfo(pg_dsn, user=f"eyetok_no_such_role_{secrets.token_hex(4)}")


def test_a_refused_role_in_postgres_durability_is_one_line_and_exit_2(
    tmp_path: Path, pg_dsn: str
) -> None:
    env = {"EYETOK_DURABILITY": "postgres", "DATABASE_URL": _refused_dsn(pg_dsn)}
    daemon = DaemonProcess(tmp_path / "data", env)
    with pytest.raises(AssertionError, match="daemon exited 2"):
        daemon.start(timeout=30)  # it exits instead of becoming ready
    assert not any("Traceback" in line for line in daemon.raw)
    [failed] = daemon.events("startup_failed")
    assert "Postgres refused the role in DATABASE_URL" in str(failed["reason"])
    assert "does not exist" in str(failed["reason"])
    assert "DATABASE_URL" in str(failed["fix"])
    assert not daemon.events("eyetok_ready")
    assert not daemon.events("rehydration_failed")  # no retrying what never heals


def test_a_refused_role_in_disk_durability_starts_degraded_and_says_so(
    tmp_path: Path, pg_dsn: str
) -> None:
    env = {"EYETOK_DURABILITY": "disk", "DATABASE_URL": _refused_dsn(pg_dsn)}
    with DaemonProcess(tmp_path / "data", env) as daemon:
        deadline = time.monotonic() + 20
        while not daemon.events("postgres_role_refused") and time.monotonic() < deadline:
            time.sleep(0.05)  # the subprocess's log, in real time
        [refused] = daemon.events("postgres_role_refused")
        assert "does not exist" in str(refused["reason"])
        assert "disk durability" in str(refused["consequence"])
        assert "DATABASE_URL" in str(refused["fix"])
        assert daemon.events("eyetok_ready")
        assert daemon.terminate()[0] == 0
    assert not daemon.events("startup_failed")
