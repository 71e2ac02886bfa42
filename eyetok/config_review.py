"""The two-person rule for the configuration file: on SIGHUP the file (``EYETOK_CONFIG``)
is read again and a change to a *guarded* section is not applied but proposed, as a rule
change through the API is (eyetok/changes.py), and goes live only when a different person
holding ``alert_rule_reviewer`` approves it. Pure: no I/O.

Guarded: each tenant's routing rules (``tenants.<t>.policy.routes``), ``recognisers``,
``playbooks``, ``budgets`` and ``suppression`` (its thresholds). On approval the routing
rules are applied live (as ``PUT /api/v1/tenants/<t>/routes`` would, in both names); the
other sections are read at start only, so they take effect at the next restart after the
approval, and the change's outcome says which. The justification is the file's
``change_justification:`` key (a sentence: at least three words).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eyetok.changes import unified_diff
from eyetok.config import FileConfig

ROUTES = "routes"
RESTART_SECTIONS = ("recognisers", "playbooks", "budgets", "suppression")


class ConfigProposal(msgspec.Struct, frozen=True, kw_only=True):
    """What changed in the guarded sections: the unified diff, the sections, and what to
    apply on approval (``routes``: tenant -> its new routes, ``{}`` for none)."""

    diff: str
    sections: tuple[str, ...]
    routes: dict[str, Any]
    why: str


def _plain(value: object) -> Any:
    """JSON's own data (lists, not tuples): what the diff shows and the routes API takes."""
    return msgspec.json.decode(msgspec.json.encode(value))


def guarded(config: FileConfig) -> dict[str, Any]:
    """The guarded sections of ``config`` as plain data."""
    routes = {
        tenant: _plain(t.policy.routes) if t.policy is not None else None
        for tenant, t in sorted(config.tenants.items())
    }
    out: dict[str, Any] = {ROUTES: routes}
    for section in RESTART_SECTIONS:
        out[section] = _plain(getattr(config, section))
    return out


def config_proposal(live: FileConfig, read: FileConfig) -> ConfigProposal | None:
    """The proposal for going from ``live`` to ``read`` (None: no guarded section changed)."""
    before, after = guarded(live), guarded(read)
    sections = tuple(name for name in after if before[name] != after[name])
    if not sections:
        return None
    changed_routes = {
        tenant: routes or {}
        for tenant, routes in after[ROUTES].items()
        if before[ROUTES].get(tenant) != routes
    }
    return ConfigProposal(
        diff="".join(
            unified_diff(before[name], after[name], name=f"config {name}") for name in sections
        ),
        sections=sections,
        routes=changed_routes,
        why=read.change_justification,
    )


def restart_needed(sections: tuple[str, ...] | list[str]) -> list[str]:
    """The changed sections that take effect only at the next restart."""
    return [s for s in sections if s in RESTART_SECTIONS]
