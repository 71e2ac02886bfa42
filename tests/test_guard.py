"""The payload-shape guard: each rule refuses a payload that breaks it, and only that."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyetok.errors import PayloadRejectedError
from eyetok.guard import (
    _IPV4,
    _IPV6,
    _SEPARATOR,
    _any_ip_literal,
    _check_each,
    _is_ip,
    check,
    ip_literals,
    scrub,
)

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


def _ip_literals_by_the_patterns_alone(text: str) -> list[str]:
    found = [m.group(0) for m in _IPV4.finditer(text) if _is_ip(m.group(0))]
    found += [m.group(0) for m in _IPV6.finditer(text) if ":" in m.group(0) and _is_ip(m.group(0))]
    return found


@settings(max_examples=400)
@given(st.text(alphabet="0123456789abcdef.:x /", max_size=24))
def test_the_dot_and_colon_count_shortcut_misses_no_ip_literal(text: str) -> None:
    assert ip_literals(text) == _ip_literals_by_the_patterns_alone(text)


@pytest.mark.parametrize(
    "text", ["1.2.3.4", "::", "::1", "fe80::1", "a 10.0.0.1 b", "1.2.3", "a:b"]
)
def test_the_shortcut_finds_what_the_patterns_find_at_the_edges(text: str) -> None:
    assert ip_literals(text) == _ip_literals_by_the_patterns_alone(text)


@settings(max_examples=400)
@given(st.lists(st.text(alphabet="0123456789abcdef.:x /", max_size=16), max_size=6))
def test_the_counts_taken_string_by_string_find_what_the_joined_strings_hold(
    strings: list[str],
) -> None:
    # the guard's scan counts dots and colons per string, not over the joined payload
    assert _any_ip_literal(strings) == bool(ip_literals(_SEPARATOR.join(strings)))


# -- the one scan per rule decides as the walk string by string does ---------------------

_BENIGN = [
    " ",
    "-",
    "_",
    "/",
    ".",
    ":",
    "=",
    '"',
    "\x00",
    "é",
    "\u0661",  # an Arabic-Indic digit: \d and \w, not [0-9]
    "7",
    "ox",
    "v1.2.3",
    "12:30:45",
]
# Each family holds the near misses and the hits of one rule; a payload draws from one
# family (and the benign pieces), so that a miss of the scan is not hidden by a hit of
# another rule. The last family is the keys' rules.
_KEYS = ["title", "text", "data", "url", "n"]
_FAMILIES = [
    (["192.0.2.17", "10.0.0", ".1", "1.2.3.4.5", "999.1.1.1", "0.0.0.0", "2025-06-11T09:30:00Z"],),
    (["2001:db8::1", "::1", "fe80::", "::", "a:b:c", "2001:db8:", ":1", "dead:beef"],),
    (['File "/app/actors/', 'delivery.py", line 88', 'File "/x/eyetok/y.py", line 3', ", line 9"],),
    (["run_history", "run_", "Supervisor", "pid=42", "pid", " 7", "rapid=1", "pid: 3"],),
    (["acme", "globex", "operator", "glo", "bex", "globexample", "acme-globex", "op"],),
    ([], ["events", "Alerts", "pid", "PID", "actor", "nursery", "batch"]),
]


def _json(family: tuple[list[str], ...]) -> st.SearchStrategy[object]:
    fragments, *keys = family
    piece = st.sampled_from(fragments or _BENIGN) | st.sampled_from(_BENIGN + fragments)
    pieces = st.lists(piece, max_size=5)
    text = st.tuples(st.sampled_from(["", " "]), pieces).map(lambda t: t[0].join(t[1]))
    key = st.sampled_from(_KEYS + (keys[0] if keys else []))
    return st.recursive(
        text | text | text | st.integers(min_value=-2, max_value=99) | st.none(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key, inner, max_size=4),
        max_leaves=12,
    )


def _verdict(check_fn: Callable[..., None], payload: object, tenant: str) -> tuple[str, str] | None:
    try:
        check_fn(payload, tenant=tenant, tenants=frozenset(TENANTS), operator_tenant="operator")
    except PayloadRejectedError as exc:
        return exc.rule, str(exc)
    return None


@pytest.mark.parametrize("family", _FAMILIES)
@settings(max_examples=100, deadline=None)
@given(data=st.data(), tenant=st.sampled_from(["acme", "acme", "operator"]))
def test_the_scan_refuses_exactly_what_the_walk_refuses(
    family: tuple[list[str], ...], data: st.DataObject, tenant: str
) -> None:
    payload = data.draw(_json(family))
    assert _verdict(check, payload, tenant) == _verdict(_check_each, payload, tenant)


@pytest.mark.parametrize(
    "text", ["2001:db8:0:0:0:0:0:1", "at 1:2:3:4:5:6:7:8 now", "1:2:3:4:5:6:7", "12:30:45"]
)
def test_an_ipv6_literal_without_a_double_colon_is_found_by_its_seven_colons(text: str) -> None:
    assert ip_literals(text) == _ip_literals_by_the_patterns_alone(text)
    assert _any_ip_literal([text]) == bool(_ip_literals_by_the_patterns_alone(text))


_MANY_TENANTS = TENANTS + tuple(f"tenant-{n:02d}" for n in range(20))


@pytest.mark.parametrize("tenants", [TENANTS, _MANY_TENANTS], ids=["few", "many"])
@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("globex is down", {"globex"}),
        ("acme-globex", set()),  # one run of word characters and hyphens: not globex
        ("globexample", set()),
        ("glo bex", set()),
        ("tenant-07 x", {"tenant-07"}),
        ("acme", set()),
    ],
)
def test_a_foreign_tenant_is_found_among_few_tenants_and_among_many(
    tenants: tuple[str, ...], text: str, names: set[str]
) -> None:
    def verdict(check_fn: Callable[..., None]) -> str | None:
        try:
            check_fn(
                {"text": text},
                tenant="acme",
                tenants=frozenset(tenants),
                operator_tenant="operator",
            )
        except PayloadRejectedError as exc:
            return exc.rule
        return None

    named = names & set(tenants)
    assert verdict(check) == verdict(_check_each) == ("no-foreign-tenant" if named else None)


@pytest.mark.parametrize(
    "payload",
    [
        {"a": "10.0.0", "b": "1"},  # no address across two strings
        {"a": "2001:db8:", "b": ":1"},
        {"a": 'File "/app/actors/', "b": 'delivery.py", line 88'},
        {"a": "pid", "b": "=42"},
        {"a": "glo", "b": "bex"},
    ],
)
def test_two_strings_never_make_one_finding(payload: object) -> None:
    check(payload, tenant="acme", tenants=TENANTS, operator_tenant="operator")


@pytest.mark.parametrize(
    "payload",
    [
        MappingProxyType({"data": MappingProxyType({"pid": 7})}),
        MappingProxyType({"blocks": ({"text": "at 192.0.2.17"},)}),
        {"flags": [True, 1.5, None, 3], "data": MappingProxyType({"alerts": [1, 2]})},
        ({"title": "run_history crashed"}, [MappingProxyType({"t": "globex is down"})]),
        {"ok": MappingProxyType({"title": "fine", "n": 2.5, "up": False})},
    ],
)
def test_any_mapping_and_sequence_is_looked_into_and_leaves_are_not(payload: object) -> None:
    # the scan tells a dict, list or tuple apart by its exact type: any other mapping
    # still goes through the Mapping ABC, and a number or a bool holds no string
    for tenant in ("acme", "operator"):
        assert _verdict(check, payload, tenant) == _verdict(_check_each, payload, tenant)
