"""A batch's 202 lists one object per accepted signal: these keys, in this order, and a
``note`` only on a resolve of nothing open (the answer is a struct, not a dict, since a
batch answers a hundred of them; its JSON is the same)."""

from __future__ import annotations

import json

import msgspec

from eyetok.http.hooks import _answer
from eyetok.incidents import NOTHING_OPEN
from eyetok.messages import Accepted, IncidentAction, SevChannel, Severity


def _json(accepted: Accepted) -> str:
    return msgspec.json.encode(_answer(accepted)).decode()


def test_an_opened_incident_answers_its_keys_in_order() -> None:
    accepted = Accepted(
        signal_id="sig_1",
        incident_id="inc_1",
        severity=Severity.CRITICAL,
        sev_channel=SevChannel.SEV1,
        action=IncidentAction.OPEN,
        rule="fatal",
    )
    assert _json(accepted) == (
        '{"signal_id":"sig_1","incident_id":"inc_1","severity":"critical",'
        '"sev_channel":"SEV1","action":"open","rule":"fatal"}'
    )


def test_an_audit_line_answers_null_for_no_incident_and_no_channel() -> None:
    accepted = Accepted(
        signal_id="sig_2",
        incident_id=None,
        severity=Severity.INFO,
        sev_channel=None,
        action=IncidentAction.AUDIT,
        rule="info-debug-audit",
    )
    assert json.loads(_json(accepted)) == {
        "signal_id": "sig_2",
        "incident_id": None,
        "severity": "info",
        "sev_channel": None,
        "action": "audit",
        "rule": "info-debug-audit",
    }


def test_a_resolve_of_nothing_open_says_so_last() -> None:
    nothing = Accepted(
        signal_id="sig_3",
        incident_id=None,
        severity=Severity.INFO,
        sev_channel=None,
        action=IncidentAction.RESOLVE,
        rule="resolve",
    )
    fields = json.loads(_json(nothing))
    assert list(fields) == [
        "signal_id",
        "incident_id",
        "severity",
        "sev_channel",
        "action",
        "rule",
        "note",
    ]
    assert fields["note"] == NOTHING_OPEN
    resolved = msgspec.structs.replace(nothing, incident_id="inc_3")
    assert "note" not in json.loads(_json(resolved))
