"""``eyetok tail`` over a sample of Heroku log lines (tests/fixtures/heroku/web-tail.log):
EyeTok's JSON lines with a Heroku prefix, one without, Heroku's own lines, a truncated
JSON line, a traceback line, a JSON list, an empty line and bytes that are not UTF-8."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eyetok.tail import DIM, RESET, Filters, parse, run

SAMPLE = Path(__file__).parent / "fixtures" / "heroku" / "web-tail.log"
ROOT = Path(__file__).resolve().parents[1]


def _lines() -> list[str]:
    return SAMPLE.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)


NO_FILTERS = Filters()


def _tail(
    filters: Filters = NO_FILTERS, *, colour: bool = False, as_json: bool = False
) -> list[str]:
    out = io.StringIO()
    run(_lines(), out, filters, colour=colour, as_json=as_json)
    return out.getvalue().splitlines()


def test_the_heroku_prefix_is_stripped_and_the_record_read() -> None:
    line = parse(_lines()[5])
    assert line.dyno == "web.1"
    assert line.prefix.startswith("2026-11-29T14:07:42.116510+00:00 app[web.1]: ")
    assert line.record is not None
    assert line.record["event"] == "incident_opened"
    assert line.record["tenant"] == "acme"


def test_every_eyetok_line_is_one_pretty_line_and_the_rest_pass_through() -> None:
    shown = _tail()
    records = [line for line in shown if " app[" not in line and " heroku[" not in line]
    events = [line.split()[4] if line.startswith("web.1") else line.split()[3] for line in records]
    assert events == [
        "eyetok_starting",
        "eyetok_ready",
        "incident_opened",
        "delivery_sent",
        "incident_opened",
        "delivery_dead",
        "schedule_fired",
        "anomaly_flagged",
        "history_flushed",
    ]
    opened = next(line for line in shown if "incident_opened" in line and "acme" in line)
    assert opened.startswith("web.1 14:07:42.116 INFO    incidents    incident_opened tenant=acme ")
    assert "incident_id=inc_5f0c2a91d3e84b17 severity=high sev_channel=SEV2" in opened
    # the fields an on-call looks for come first, then the rest in name order
    assert opened.endswith("sev_channel=SEV2 rule=new-unhandled-prod")
    # lines that are not EyeTok records pass through as they were (no TTY: no colour)
    passed = [line for line in shown if line not in records]
    assert any("heroku[router]: at=info method=POST" in line for line in passed)
    assert any(line.endswith("Traceback (most recent call last):") for line in passed)
    truncated = next(line for line in passed if "delivery_retrying" in line)
    assert truncated.endswith('"level": "info", "timest')
    assert any(line.endswith('["not", "an", "event"]') for line in passed)
    assert any("garbled" in line for line in passed)
    assert len(shown) == 9 + 7  # the empty line is dropped
    assert not any("\x1b[" in line for line in shown)


def test_other_lines_are_dimmed_and_records_coloured_by_severity_on_a_terminal() -> None:
    shown = _tail(colour=True)
    router = next(line for line in shown if "heroku[router]" in line)
    assert router.startswith(DIM)
    assert router.endswith(RESET)
    critical = next(line for line in shown if "incident_opened" in line and "globex" in line)
    assert critical.startswith("\x1b[1;97;41m")
    high = next(line for line in shown if "incident_opened" in line and "acme" in line)
    assert high.startswith("\x1b[1;31m")
    dead = next(line for line in shown if "delivery_dead" in line)
    assert dead.startswith("\x1b[1;97;41m")  # its severity (critical) outranks its level
    ready = next(line for line in shown if "eyetok_ready" in line)
    assert not ready.startswith("\x1b[")  # info level, no severity: plain


@pytest.mark.parametrize(
    ("filters", "events"),
    [
        (Filters(tenant="globex"), ["incident_opened", "delivery_dead", "anomaly_flagged"]),
        (Filters(severity="critical"), ["incident_opened", "delivery_dead"]),
        (Filters(severity="SEV2"), ["incident_opened", "delivery_sent"]),
        (Filters(severity="warning"), ["delivery_dead"]),
        (Filters(incident="inc_5f0c2a91d3e84b17"), ["incident_opened", "delivery_sent"]),
        (Filters(actor="scheduler"), ["schedule_fired"]),
        (Filters(actor="delivery", tenant="acme"), ["delivery_sent"]),
        (Filters(tenant="initech"), []),
    ],
    ids=["tenant", "severity", "sev-channel", "level", "incident", "actor", "two", "none"],
)
def test_filters_keep_matching_records_as_json(filters: Filters, events: list[str]) -> None:
    shown = _tail(filters, as_json=True)
    records = [json.loads(line) for line in shown]  # only JSON, nothing else
    assert [r["event"] for r in records] == events
    originals = {line.split(": ", 1)[1].strip() for line in _lines() if ": {" in line}
    assert set(shown) <= originals  # passed through as they were


def test_filtered_pretty_output_still_passes_other_lines_through() -> None:
    shown = _tail(Filters(tenant="globex"))
    assert sum("globex" in line and " app[" not in line for line in shown) == 3
    assert sum(" app[" in line or " heroku[" in line for line in shown) == 7


def test_the_command_reads_stdin_and_never_dies_on_a_bad_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "tail", "--tenant", "acme"],
        input=SAMPLE.read_bytes(),
        capture_output=True,
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin", "EYETOK_CONFIG": "/nonexistent/eyetok.yaml"},
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    out = result.stdout.decode()
    assert "\x1b[" not in out  # a pipe is not a terminal
    assert out.count("tenant=acme") == 2
    assert "garbled" in out
    assert "delivery_retrying" in out  # the truncated line, passed through

    as_json = subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "tail", "--actor", "routines", "--json"],
        input=SAMPLE.read_bytes(),
        capture_output=True,
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert as_json.returncode == 0
    [line] = as_json.stdout.decode().splitlines()
    assert json.loads(line)["anomaly_id"] == "anm_2b7e4c19a0d3f866"


def test_a_batch_line_matches_by_any_of_its_decisions() -> None:
    line = {
        "actor": "incidents",
        "tenant": "acme",
        "event": "incidents_decided",
        "level": "info",
        "decisions": [
            {"event": "incident_opened", "incident_id": "inc_a", "severity": "low"},
            {"event": "incident_opened", "incident_id": "inc_b", "sev_channel": "SEV1"},
            {"event": "resolve_of_nothing_open", "signal_id": "sig_c"},
        ],
    }
    assert Filters(incident="inc_b").match(line)
    assert Filters(severity="sev1").match(line)
    assert Filters(severity="low", tenant="acme").match(line)
    assert not Filters(incident="inc_z").match(line)
    assert not Filters(severity="critical").match(line)
    assert not Filters(incident="inc_a", tenant="globex").match(line)
