"""EyeTok's log lines: one compact JSON object per line, keys in the order they were given,
whatever the fields hold."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from eyetok import log


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What ``eyetok run``'s configuration writes; the configuration before is restored
    (the same processor list: loggers bound at import hold it, and capture_logs edits it)."""
    saved = structlog.get_config()
    chain = list(saved["processors"])  # configure() edits that very list
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    log.configure("info")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        yield out
    finally:
        saved["processors"][:] = chain
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level


def rendered(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_line_is_one_compact_object_with_the_keys_in_order(lines: io.StringIO) -> None:
    log.get("incidents").info(
        "incident_opened", tenant="operator", known_to_eyetok=False, sev_channel="SEV2"
    )
    [line] = rendered(lines)
    assert line.startswith('{"actor":"incidents","tenant":"operator","known_to_eyetok":false,')
    fields = json.loads(line)
    assert list(fields) == [
        "actor",
        "tenant",
        "known_to_eyetok",
        "sev_channel",
        "event",
        "level",
        "timestamp",
    ]
    assert fields["event"] == "incident_opened"
    assert fields["level"] == "info"
    assert fields["timestamp"].endswith("Z")
    assert ", " not in line
    assert '": ' not in line


class _Odd:
    def __repr__(self) -> str:
        return "<odd thing>"


class _Told:
    def __structlog__(self) -> dict[str, int]:
        return {"told": 1}


def test_odd_values_are_rendered_not_dropped(lines: io.StringIO) -> None:
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    logger = log.get("ingest")
    logger.info("odd", thing=_Odd(), told=_Told(), at=at, text="café")
    logger.info("keys", by_number={1: "one"}, by_pair={("a", "b"): 1})
    odd, keys = (json.loads(line) for line in rendered(lines))
    assert odd["thing"] == "<odd thing>"
    assert odd["told"] == {"told": 1}
    assert odd["at"] == "2026-12-04T12:00:00Z"
    assert odd["text"] == "café"
    assert keys["by_number"] == {"1": "one"}
    assert keys["by_pair"] == {"('a', 'b')": 1}


def test_a_logged_exception_is_one_field_on_the_same_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("broken on purpose")
    except ValueError:
        log.get("supervisor").error("actor_crashed", exc_info=True)
    [line] = rendered(lines)
    fields: dict[str, Any] = json.loads(line)
    assert "ValueError: broken on purpose" in fields["exception"]


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 5, 2, 53, 14, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 2, 53, 14, tzinfo=UTC),  # no fraction, as isoformat writes it
        datetime(2026, 12, 5, 2, 53, 14, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(2028, 2, 29, 12, 0, 0, 42, tzinfo=UTC),
    ],
)
def test_the_timestamp_is_the_text_structlogs_stamper_wrote(at: datetime) -> None:
    """``TimeStamper(fmt="iso", utc=True)`` wrote ``datetime.now(UTC).isoformat()`` with
    ``Z`` for ``+00:00``; the stamper that formats a second once gives the same text,
    also for the instants after another second was formatted."""
    stamp = log.UtcTimestamp(now_ns=lambda: ns)
    before = at - timedelta(seconds=1, microseconds=7)
    for instant in (before, at, at + timedelta(microseconds=1), at):
        ns = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000
        ns += 999  # nanoseconds below a microsecond are floored, as datetime.now floors
        got = stamp(None, "info", {})["timestamp"]
        assert got == instant.isoformat().replace("+00:00", "Z")


def test_context_bound_with_structlog_is_still_merged(lines: io.StringIO) -> None:
    logger = log.get("ingest")
    logger.info("before")
    with structlog.contextvars.bound_contextvars(request_id="req_1"):
        logger.info("during")
    logger.info("after")
    before, during, after = (json.loads(line) for line in rendered(lines))
    assert "request_id" not in before
    assert during["request_id"] == "req_1"
    assert "request_id" not in after


def test_a_logger_bound_at_import_before_configure_writes_json_too() -> None:
    """A module's ``_log = log.get(...)`` runs at import, maybe before ``configure``: a
    fresh interpreter imports one such module first, then configures, then logs."""
    script = (
        "from eyetok.http import errors\n"
        "from eyetok import log\n"
        "log.configure('info')\n"
        "errors._log.error('request_failed', path='/readyz')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    [line] = done.stdout.splitlines()
    assert json.loads(line)["event"] == "request_failed"
