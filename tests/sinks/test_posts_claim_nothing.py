"""A post never claims an action that did not happen: an incident's own post proposes no
remediation and reports no triage; only a playbook's thread post does, and the playbooks
actor makes one only for a proposal or a finding it recorded (tests/playbooks/)."""

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


def test_the_sev1_loop_posts_say_who_and_what() -> None:
    options = SlackOptions(oncall_user="U0ONCALL")
    cases = {case.name: case.payload for case in every_template(slack_options=options)}
    acked = next(p for n, p in cases.items() if n.startswith("slack/step-acknowledged/SEV1/"))
    assert acked["text"].startswith("Acknowledged by slack:dana (U0DANA) at ")
    assert acked["text"].endswith("; no escalation will follow.")
    first = acked["update"]  # the first post, rewritten: who acknowledged, Resolve… only
    assert first["ts"] == acked["thread_ts"]
    assert "Acknowledged by slack:dana (U0DANA)" in msgspec.json.encode(first).decode()
    assert [
        e["action_id"] for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]
    ] == ["eyetok_resolve_with_note"]
    resolved = next(p for n, p in cases.items() if n.startswith("slack/step-resolved/SEV1/"))
    assert resolved["text"].startswith("Resolved by pagerduty:Tenex Engineer (PLH1HKV) at ")
    assert resolved["text"].endswith(": failed over to the replica")
    rewritten = msgspec.json.encode(resolved["update"]).decode()
    assert "Resolved by pagerduty:Tenex Engineer (PLH1HKV)" in rewritten
    assert '"actions"' not in rewritten  # nothing left to press
    renotify = next(p for n, p in cases.items() if n.startswith("slack/step-renotify/SEV1/"))
    assert renotify["text"].startswith("<@U0ONCALL> Not acknowledged after ")
    assert [b["elements"][0]["value"] for b in renotify["blocks"] if b["type"] == "actions"] == [
        "incident:inc_0f3a9c2e7b1d4e56"
    ]
    mail = next(p for n, p in cases.items() if n.startswith("email/step-escalated/SEV1/"))
    assert mail["subject"].startswith("[SEV1, escalated] ")
    assert "Escalated to you: nobody acknowledged this SEV1 within " in mail["text"]
    opened = next(p for n, p in cases.items() if n.startswith("slack/open/SEV1/"))
    assert [b["elements"][0]["value"] for b in opened["blocks"] if b["type"] == "actions"] == [
        "incident:inc_0f3a9c2e7b1d4e56"
    ]
