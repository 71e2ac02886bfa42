"""The probe source: synthetic-check verdicts from EyeTok's probes, one or a batch.

``POST /hooks/probe/{tenant}`` takes one verdict object or a JSON array of them::

    {
      "server": "registry.example.net",          # required, non-empty: what was probed
      "verdict": "down",                         # required: ok | degraded | down | timeout | ...
      "error_kind": "tls_handshake",             # required unless the verdict is ok
      "asn": 13335,                              # required: the probe's AS (13335 or "AS13335")
      "registry": "npm",                         # required: the package registry probed
      "region": "us-east-1",                     # required: where the probe ran
      "observed_at": "2026-11-23T16:05:41Z"      # required: RFC 3339 with an offset
    }

Unknown fields are ignored; wrong types and missing fields are refused with a
:class:`~eyetok.errors.MalformedPayloadError` naming the JSON path (``$[3].verdict``).

Each verdict becomes one :class:`~eyetok.messages.Signal`:

* ``source``/``resource`` ``probe``, ``action`` the verdict (lower-cased);
* ``dedup_key`` ``probe:{server}:{error_kind}``: one incident per server and kind of
  failure. ``ok`` (any case) is a RESOLVE: it resolves the incident with the same key,
  so an ``ok`` verdict names the ``error_kind`` that cleared (without one it resolves
  nothing and is recorded in the audit log only);
* any other verdict is an ALERT with level ``error`` and the mark ``synthetic_check``, so
  the canonical rule ``synthetic-check-failure`` makes it high (SEV2 / SEV2.5); an ``ok``
  verdict has level ``info``;
* ``cluster_key`` ``{error_kind}|{asn}|{registry}`` (lower case) on failing verdicts: the
  key cross-tenant suppression groups a registry-wide outage by;
* ``title`` ``{server} {verdict}: {error_kind} (AS{asn}, {registry}, {region})``;
  ``culprit`` the server; ``tags`` every field (``asn`` as digits, ``observed_at`` as
  sent, re-serialised in ISO 8601).

The recognisers are not consulted: a probe verdict's marks are fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec.structs import replace as _replace

from eyetok.errors import MalformedPayloadError
from eyetok.messages import Signal, SignalKind
from eyetok.sources.generic import NonEmpty, decode
from eyetok.sources.shared import shared_signal

__all__ = ["ProbeVerdict", "normalise"]

OK = "ok"
FAILING_MARKS = frozenset({"synthetic_check"})
_NO_MARKS: frozenset[str] = frozenset()


class ProbeVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """One probe verdict (unknown fields ignored)."""

    server: NonEmpty
    verdict: NonEmpty
    asn: int | NonEmpty
    registry: NonEmpty
    region: NonEmpty
    observed_at: Annotated[datetime, msgspec.Meta(tz=True)]
    error_kind: str | None = None


_Payload = ProbeVerdict | list[ProbeVerdict]


def normalise(
    body: bytes,
    *,
    tenant: str,
    received_at: datetime,
    new_id: Callable[[], str],
) -> list[Signal]:
    """Decode one probe verdict or an array of them; one :class:`Signal` each."""
    payload: ProbeVerdict | list[ProbeVerdict] = decode(body, _Payload, "probe verdict")
    shared = shared_signal("probe", tenant=tenant, received_at=received_at)
    if isinstance(payload, list):
        return [_signal(v, f"$[{i}]", shared, new_id) for i, v in enumerate(payload)]
    return [_signal(payload, "$", shared, new_id)]


def _asn(raw: int | str) -> str:
    if isinstance(raw, int):
        return str(raw)
    text = raw.strip()
    return text[2:] if text[:2].upper() == "AS" else text


def _signal(verdict: ProbeVerdict, path: str, shared: Signal, new_id: Callable[[], str]) -> Signal:
    word = verdict.verdict.strip().lower()
    failing = word != OK
    error_kind = (verdict.error_kind or "").strip()
    if failing and not error_kind:
        raise MalformedPayloadError(
            f"probe verdict: {path}.error_kind is missing (a {word!r} verdict names its error_kind)"
        )
    asn = _asn(verdict.asn)
    where = f"(AS{asn}, {verdict.registry}, {verdict.region})"
    title = (
        f"{verdict.server} {word}: {error_kind} {where}"
        if error_kind
        else f"{verdict.server} {word} {where}"
    )
    observed = verdict.observed_at.isoformat()
    tags = (
        ("server", verdict.server),
        ("verdict", word),
        ("error_kind", error_kind),
        ("asn", asn),
        ("registry", verdict.registry),
        ("region", verdict.region),
        ("observed_at", observed),
    )
    return _replace(
        shared,
        signal_id=new_id(),
        action=word,
        kind=SignalKind.ALERT if failing else SignalKind.RESOLVE,
        dedup_key=f"probe:{verdict.server}:{error_kind}",
        title=title,
        level="error" if failing else "info",
        message=f"observed at {observed} from AS{asn} in {verdict.region}",
        culprit=verdict.server,
        tags=tags,
        marks=FAILING_MARKS if failing else _NO_MARKS,
        cluster_key=f"{error_kind}|{asn}|{verdict.registry}".lower() if failing else None,
    )
