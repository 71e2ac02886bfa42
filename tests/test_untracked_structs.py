"""The structs a batch hook makes several of per alert are not tracked by the cyclic
garbage collector (``gc=False``): a young collection then had fewer live objects to walk
(bench/batched.py --source alertmanager: collections in the burst 14-17 taking 27-35 ms
of CPU, then 7-8 taking 9-12 ms). That is only safe while none of them can be part of a
reference cycle: every field holds immutable scalars, or tuples and frozensets of them."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import msgspec
import pytest

from eyetok.messages import Accepted, Incident, Routing, Signal, SignalKind
from state.history import journal

_ROWS = [
    t
    for t in vars(journal).values()
    if isinstance(t, type) and issubclass(t, msgspec.Struct) and t.__name__.endswith("Row")
]
_SCALARS = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.DateTimeType,
    msgspec.inspect.EnumType,
    msgspec.inspect.LiteralType,
)


def _holds_no_reference(t: msgspec.inspect.Type) -> bool:
    """Whether a value of ``t`` can never lead back to the struct holding it."""
    match t:
        case msgspec.inspect.UnionType(types=types):
            return all(_holds_no_reference(u) for u in types)
        case (
            msgspec.inspect.VarTupleType(item_type=item)
            | msgspec.inspect.FrozenSetType(item_type=item)
        ):
            return _holds_no_reference(item)
        case msgspec.inspect.TupleType(item_types=items):
            return all(_holds_no_reference(i) for i in items)
        case _:
            return isinstance(t, _SCALARS)


@pytest.mark.parametrize(
    "struct", [Signal, Routing, Accepted, Incident, *_ROWS], ids=lambda t: t.__name__
)
def test_an_untracked_struct_holds_only_immutable_values(struct: type[msgspec.Struct]) -> None:
    assert struct.__struct_config__.gc is False
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    wrong = [f.name for f in info.fields if not _holds_no_reference(f.type)]
    assert wrong == [], f"{struct.__name__}: {wrong} could hold a reference; drop gc=False"


def test_a_signal_is_not_tracked() -> None:
    signal = Signal(
        signal_id="sig_1",
        tenant="acme",
        source="alertmanager",
        resource="alertmanager",
        action="firing",
        kind=SignalKind.ALERT,
        dedup_key="am:1",
        title="t",
        received_at=datetime(2026, 12, 5, tzinfo=UTC),
        tags=(("env", "production"),),
    )
    assert not gc.is_tracked(signal)
    assert len(_ROWS) >= 10  # the journal's row types were found
