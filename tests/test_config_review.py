"""The guarded sections of the configuration file and the proposal a change to them makes
(eyetok/config_review.py)."""

from __future__ import annotations

from eyetok.config import parse_file_config
from eyetok.config_review import config_proposal, restart_needed

BEFORE = """
tenants:
  acme:
    policy: {routes: {SEV1: [{sink: slack, target: "#acme-pager"}]}}
  globex:
    policy: {routes: {SEV2: [{sink: slack, target: "#globex"}]}}
suppression: {min_tenants: 30}
log_level: info
"""


def test_an_unguarded_change_proposes_nothing() -> None:
    live = parse_file_config(BEFORE)
    read = parse_file_config(BEFORE.replace("log_level: info", "log_level: debug"))
    assert config_proposal(live, read) is None


def test_a_guarded_change_is_one_proposal_with_its_diff_and_justification() -> None:
    live = parse_file_config(BEFORE)
    text = BEFORE.replace("#acme-pager", "#acme-war-room").replace("30}", "20}")
    read = parse_file_config(text + 'change_justification: "page the war room this week"\n')
    proposal = config_proposal(live, read)
    assert proposal is not None
    assert proposal.sections == ("routes", "suppression")
    assert proposal.routes == {"acme": {"SEV1": [{"sink": "slack", "target": "#acme-war-room"}]}}
    assert '-        "target": "#acme-pager"' in proposal.diff
    assert '+        "target": "#acme-war-room"' in proposal.diff
    assert '+  "min_tenants": 20,' in proposal.diff
    assert "--- config routes (live)" in proposal.diff
    assert proposal.why == "page the war room this week"
    assert restart_needed(proposal.sections) == ["suppression"]


def test_a_tenant_whose_routes_are_removed_is_proposed_none() -> None:
    live = parse_file_config(BEFORE)
    read = parse_file_config(
        BEFORE.replace(
            '    policy: {routes: {SEV2: [{sink: slack, target: "#globex"}]}}\n', "    tier: team\n"
        )
    )
    proposal = config_proposal(live, read)
    assert proposal is not None
    assert proposal.routes == {"globex": {}}
