"""The payload-shape guard: what may leave EyeTok, checked before every send.

Four rules (design section 5), each named:

- ``one-event``: a payload describes exactly one event (no batches, no lists of alerts);
- ``no-ip-literal``: no IPv4 or IPv6 address literal anywhere (upstream IPs are scrubbed
  at render time with :func:`scrub`; the guard is the backstop);
- ``no-internals``: nothing of EyeTok's own machinery: process ids, actor names, stack
  frames of EyeTok's code;
- ``no-foreign-tenant``: no identifier of a tenant other than the payload's own (the
  operator's own notices may name any tenant; the operator's id is no customer's).

:func:`check` raises :class:`PayloadRejectedError` naming the rule; it never mutates.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Set

from eyetok.errors import PayloadRejectedError

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_INTERNAL_KEYS = frozenset({"pid", "process_id", "actor", "supervisor", "task", "nursery"})
_INTERNAL_TEXT = re.compile(
    r'File "[^"]*/(?:eyetok|actors|state|schedules|harness)/[^"]+", line \d+'
    r"|\b(?:run_history|run_delivery|run_incidents|run_router|run_mirror|Supervisor)\b"
    r"|\bpid[=: ]\d+"
)
# Every match of _INTERNAL_TEXT contains one of these (a cheap first look).
_INTERNAL_MARKS = ('File "', "run_", "Supervisor", "pid")
_EVENT_LIST_KEYS = frozenset({"events", "alerts", "incidents", "batch"})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _may_hold_ipv6(text: str) -> bool:
    """Whether ``text`` may hold an IPv6 literal :data:`_IPV6` finds: one written out in
    full has eight groups (seven colons), a shorter one has ``::`` (the pattern takes no
    embedded IPv4 part). An RFC 3339 timestamp's two colons are neither."""
    return "::" in text or text.count(":") >= 7


def ip_literals(text: str) -> list[str]:
    # An IPv4 match holds three dots, an IPv6 literal seven colons or a "::": most text
    # lacks them, and counting is far cheaper than the patterns (the IPv6 one tries every
    # position).
    found = []
    if text.count(".") >= 3:
        found += [m.group(0) for m in _IPV4.finditer(text) if _is_ip(m.group(0))]
    if _may_hold_ipv6(text):
        found += [
            m.group(0) for m in _IPV6.finditer(text) if ":" in m.group(0) and _is_ip(m.group(0))
        ]
    return found


def scrub(text: str) -> str:
    """Upstream text with every IP literal replaced by ``[ip]``."""
    found = ip_literals(text)
    if not found:  # most text: returned as it is
        return text
    for literal in sorted(set(found), key=len, reverse=True):
        text = text.replace(literal, "[ip]")
    return text


def _walk(value: object, path: str = "$") -> Iterator[tuple[str, str | None, object]]:
    """(path, key, leaf-or-container) for every node of a JSON-like value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path}.{key}", str(key), item
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield f"{path}[{i}]", None, item
            yield from _walk(item, f"{path}[{i}]")


_WORD = re.compile(r"[\w-]+")
# Joins a payload's strings for one scan per rule. No rule's pattern can match across it
# where it would not match across the end of a string: it is no word character, digit,
# hex digit, dot, colon or hyphen (only ``no-internals``' ``[^"]*`` spans it, and what
# that finds is looked at again string by string).
_SEPARATOR = "\x00"
# Up to this many tenants, looking for each other tenant's id in the payload's text is
# cheaper than splitting the text into words (a word that names one is a substring too).
_FEW_TENANTS = 16


def check(
    payload: object,
    *,
    tenant: str,
    tenants: Iterable[str],
    operator_tenant: str | None = None,
) -> None:
    """Raise :class:`PayloadRejectedError` if ``payload`` (JSON-like) breaks a rule.

    Every payload goes out through here, so the common case is made cheap: the payload's
    strings are scanned together, once per rule (:func:`_suspect`); only a payload that
    may break a rule is walked string by string (:func:`_check_each`), which decides and
    names the rule and the path. The scan never misses what the walk would refuse."""
    known = tenants if isinstance(tenants, set | frozenset) else frozenset(tenants)
    if _suspect(payload, tenant=tenant, tenants=known, operator_tenant=operator_tenant):
        _check_each(payload, tenant=tenant, tenants=known, operator_tenant=operator_tenant)


def _strings(value: object, into: list[str]) -> bool:
    """Append every string in ``value`` (a container; keys aside) to ``into``; True as
    soon as a key breaks ``one-event`` or ``no-internals``. A dict, a list or a tuple
    (what ``msgspec.to_builtins`` makes) is told apart by its exact type, and a leaf
    (None, a number) is not looked into: ``isinstance`` against the ``Mapping`` ABC, asked
    of every field, was most of a payload's guard (any other mapping still goes through
    it)."""
    if type(value) is dict or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping)):
        for key, item in value.items():
            name = str(key).lower()
            if name in _INTERNAL_KEYS:
                return True
            if (
                name in _EVENT_LIST_KEYS
                and (len(item) if isinstance(item, list | tuple) else 1) != 1
            ):
                return True
            if isinstance(item, str):
                into.append(item)
            elif type(item) not in _LEAVES and _strings(item, into):
                return True
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                into.append(item)
            elif type(item) not in _LEAVES and _strings(item, into):
                return True
    return False


# values that hold no string and are no container: not walked into
_LEAVES = frozenset({type(None), int, float, bool})
_NOT_MAPPINGS = _LEAVES | {list, tuple, str}


def _any_ip_literal(strings: list[str]) -> bool:
    """Whether one of ``strings`` holds an IP literal. The dot and colon counts that let
    :func:`ip_literals` skip its patterns are taken string by string: over a whole
    payload a URL's dots and the timestamps' colons would pass them and run both
    patterns across every string. (The same finding as over the joined strings: no
    pattern matches across :data:`_SEPARATOR`.)"""
    for text in strings:  # _may_hold_ipv6 written out: a call per string cost more
        if (text.count(".") >= 3 or "::" in text or text.count(":") >= 7) and ip_literals(text):
            return True
    return False


def _suspect(
    payload: object, *, tenant: str, tenants: Set[str], operator_tenant: str | None
) -> bool:
    """Whether ``payload`` may break a rule (False: it breaks none)."""
    strings: list[str] = []
    if _strings(payload, strings):
        return True
    if _any_ip_literal(strings):
        return True
    text = _SEPARATOR.join(strings)
    if any(mark in text for mark in _INTERNAL_MARKS) and _INTERNAL_TEXT.search(text):
        return True
    if tenant == operator_tenant:
        return False
    if len(tenants) <= _FEW_TENANTS and not any(
        t in text for t in tenants if t != tenant and t != operator_tenant and len(t) >= 3
    ):
        return False  # no other tenant's id is even a substring: none is named
    named = set(_WORD.findall(text))
    named &= tenants
    named.discard(tenant)
    if operator_tenant is not None:
        named.discard(operator_tenant)
    return any(len(word) >= 3 for word in named)


def _check_each(
    payload: object, *, tenant: str, tenants: Set[str], operator_tenant: str | None
) -> None:
    """The rules string by string, in the payload's order: the first broken one raises,
    naming where."""
    for path, key, item in _walk(payload):
        count = len(item) if isinstance(item, list | tuple) else 1
        if key is not None and key.lower() in _EVENT_LIST_KEYS and count != 1:
            raise PayloadRejectedError("one-event", f"{path} carries {count} events")
        if key is not None and key.lower() in _INTERNAL_KEYS:
            raise PayloadRejectedError("no-internals", f"{path} is EyeTok-internal")
        if isinstance(item, str):
            ips = ip_literals(item)
            if ips:
                raise PayloadRejectedError("no-ip-literal", f"{path} contains {ips[0]}")
            internal = _INTERNAL_TEXT.search(item)
            if internal:
                raise PayloadRejectedError("no-internals", f"{path} contains {internal.group(0)!r}")
    if tenant == operator_tenant:
        return
    # The operator's own id is not a customer's: naming it leaks nothing (and "operator"
    # is an ordinary word in upstream titles). A tenant id is named where it stands as a
    # whole run of word characters and hyphens; looking every run up in a set keeps the
    # check linear in the payload, however many tenants EyeTok serves.
    for path, _, item in _walk(payload):
        if isinstance(item, str):
            for word in _WORD.findall(item):
                if (
                    word in tenants
                    and word != tenant
                    and word != operator_tenant
                    and len(word) >= 3
                ):
                    raise PayloadRejectedError("no-foreign-tenant", f"{path} names tenant {word!r}")
