"""A post never claims an action that did not happen: there is no playbook registry, so
no sink's rendered post proposes a remediation or reports a triage."""

from __future__ import annotations

import msgspec

from actors.sinks.templates import SINK_TYPES, every_template
from eyetok.config import SlackOptions

CLAIMS = ("proposed remediation", "triaged by", "triage outcome", "waiting for approval")


def test_no_rendered_post_of_any_sink_claims_a_proposal_or_a_triage() -> None:
    options = SlackOptions(oncall_user="U0ONCALL")
    seen: set[str] = set()
    for case in every_template(slack_options=options):
        seen.add(case.name.split("/", 1)[0])
        text = msgspec.json.encode(case.payload).decode().lower()
        for claim in CLAIMS:
            assert claim not in text, f"{case.name} says {claim!r}"
    assert seen == set(SINK_TYPES)


def test_sev2_and_sev3_posts_say_what_is_true() -> None:
    options = SlackOptions(oncall_user="U0ONCALL")
    texts = {
        case.name: msgspec.json.encode(case.payload).decode()
        for case in every_template(slack_options=options)
        if case.name.startswith("slack/open/")
    }
    sev2 = [t for name, t in texts.items() if "/SEV2/" in name]
    sev3 = [t for name, t in texts.items() if "/SEV3/" in name]
    assert sev2
    assert all("<@U0ONCALL> Needs a human" in t for t in sev2)
    assert all("no remediation is proposed automatically yet" in t for t in sev2)
    assert sev3
    assert all("Posted for the record; no automatic triage ran." in t for t in sev3)
