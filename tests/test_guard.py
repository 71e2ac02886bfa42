"""The payload-shape guard: each rule refuses a payload that breaks it, and only that."""

from __future__ import annotations

import pytest

from eyetok.errors import PayloadRejectedError
from eyetok.guard import check, ip_literals, scrub

TENANTS = ("operator", "acme", "globex")


def _refused(payload: object, *, tenant: str = "acme") -> str:
    with pytest.raises(PayloadRejectedError) as refused:
        check(payload, tenant=tenant, tenants=TENANTS, operator_tenant="operator")
    return refused.value.rule


def test_a_clean_payload_passes() -> None:
    check(
        {"type": "incident.opened", "data": {"title": "KeyError at 12:30:45 in v1.2.3", "n": 4}},
        tenant="acme",
        tenants=TENANTS,
        operator_tenant="operator",
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"events": [{"title": "a"}, {"title": "b"}]},
        {"data": {"alerts": []}},
        {"incidents": ({"id": 1}, {"id": 2}, {"id": 3})},
    ],
)
def test_more_than_one_event_is_refused(payload: object) -> None:
    assert _refused(payload) == "one-event"


@pytest.mark.parametrize(
    "text",
    [
        "upstream 192.0.2.17 timed out",
        'fwd="198.51.100.4"',
        "peer 2001:db8::1 reset",
        "loopback ::1",
    ],
)
def test_an_ip_literal_anywhere_is_refused(text: str) -> None:
    assert _refused({"blocks": [{"text": {"text": text}}]}) == "no-ip-literal"


@pytest.mark.parametrize(
    "payload",
    [
        {"pid": 4242, "title": "x"},
        {"data": {"actor": "delivery"}},
        {"text": 'Traceback: File "/app/actors/delivery.py", line 88, in run_lane'},
        {"text": "crashed in run_history"},
        {"text": "worker pid=31337 exited"},
    ],
)
def test_eyetok_internals_are_refused(payload: object) -> None:
    assert _refused(payload) == "no-internals"


def test_another_tenants_id_is_refused_but_the_operator_may_name_any() -> None:
    payload = {"text": "globex is also down"}
    assert _refused(payload, tenant="acme") == "no-foreign-tenant"
    check(payload, tenant="operator", tenants=TENANTS, operator_tenant="operator")
    check({"text": "acme is down"}, tenant="acme", tenants=TENANTS, operator_tenant="operator")
    # a tenant id inside a longer word is not that tenant
    check({"text": "globexample.com"}, tenant="acme", tenants=TENANTS, operator_tenant="operator")


def test_scrub_replaces_every_ip_literal() -> None:
    text = 'at=error code=H12 fwd="192.0.2.17" peer=2001:db8::1 at 10:00:01'
    assert ip_literals(scrub(text)) == []
    assert scrub(text) == 'at=error code=H12 fwd="[ip]" peer=[ip] at 10:00:01'
