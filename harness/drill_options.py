"""The ``eyetok drill run`` command line: the scenario names, the ``--break`` choices and
the arguments, without the rig, its fake peers (dnspython among them) or the scenarios.
``eyetok`` builds its whole parser at every start, the daemon's included: importing the
rig there cost ``eyetok run`` about 2 MB of RSS for a command it does not run (issue 20).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

# In the order ``all`` runs them (harness/scenarios/__init__.py maps each to its code;
# tests/harness/test_drill_options.py checks the two agree).
SCENARIO_NAMES = (
    "single-tenant-outage",
    "registry-wide-outage",
    "sink-failure",
    "dst-edge",
    "budget-exhaustion",
)
NAMES = (*SCENARIO_NAMES, "all")

# Deliberately broken invariants (``--break``), for testing the drill itself.
BREAKAGES = {
    "suppression": "the suppression window is disabled (suppression.enabled: false)",
    "budgets": "budgets are off (budgets.enabled: false)",
    "sink": "the drill PagerDuty service is down for the whole drill and never recovers",
    "clock": "the daemon judges business hours in UTC (faults.business_hours_in_utc)",
}


def _instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset, in UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant") from exc
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return at.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", choices=NAMES, help="the scenario, or all of them in order")
    parser.add_argument("--url", help="a running daemon (default: start one with local peers)")
    parser.add_argument("--receipt", type=Path, help="write the JSON receipt here")
    parser.add_argument("--json", action="store_true", help="print the receipt, not a summary")
    parser.add_argument("--tenant", default="drill", help="the drill tenant (default: drill)")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="mark the hour-boundary steps skipped instead of waiting for the hour",
    )
    parser.add_argument(
        "--monthly-slot",
        type=_instant,
        help="the monthly-drill slot this run is (the daemon's schedule passes it)",
    )
    parser.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        choices=sorted(BREAKAGES),
        help="test the drill itself: break an invariant on purpose in the daemon it starts ("
        + "; ".join(f"{k}: {v}" for k, v in BREAKAGES.items())
        + ")",
    )
