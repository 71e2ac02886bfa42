"""How EyeTok recognises the three special signals of the severity table, as data.

Design section 2 gives three rows that no Sentry level describes: a Heroku H12 request
timeout (arriving through Sentry's log integration), a paper gate breach (a custom
event) and a synthetic check failure. A :class:`Recogniser` says how to spot one of
them in a signal's title, message and tags; :class:`Recognisers` holds the three, each
with the documented default, and :func:`marks_for` names the ones that match. The
severity rules read those names from ``Signal.marks``.

A recogniser matches when **any** of its criteria matches:

* ``tags``: any one of these ``key: value`` pairs is among the signal's tags;
* ``title_contains``: the title contains **every** one of these strings;
* ``message_contains``: the message contains **every** one of these strings;
* ``title_prefix``: the title starts with any one of these strings;
* ``message_prefix``: the message starts with any one of these strings.

Every comparison is case-insensitive (keys, values, needles). A criterion left empty
never matches, so a recogniser with no criteria (``h12: {}`` in YAML) is switched off.

The defaults:

=================  ==================================================================
``h12``            title or message contains ``H12`` and ``Request timeout``;
                   or tag ``heroku.error_code`` is ``H12``
``paper_gate``     tag ``eyetok.signal`` is ``paper_gate_breach``; or title or message
                   starts with ``Paper gate breach``
``synthetic_check`` tag ``eyetok.signal`` is ``synthetic_check_failure``; or tag
                   ``check.type`` is ``synthetic``
=================  ==================================================================

Build from configuration with ``msgspec.convert(mapping, Recognisers)``; unknown keys
are refused, and a recogniser that is named replaces its default as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

__all__ = [
    "DEFAULT_H12",
    "DEFAULT_PAPER_GATE",
    "DEFAULT_SYNTHETIC_CHECK",
    "Recogniser",
    "Recognisers",
    "marks_for",
]


class Recogniser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One way to spot a special signal; matches when any criterion matches."""

    tags: dict[str, str] = {}
    title_contains: tuple[str, ...] = ()
    message_contains: tuple[str, ...] = ()
    title_prefix: tuple[str, ...] = ()
    message_prefix: tuple[str, ...] = ()

    def matches(self, *, title: str, message: str, tags: Mapping[str, frozenset[str]]) -> bool:
        """Whether this recogniser matches.

        ``tags`` maps case-folded keys to the case-folded values seen for that key
        (see :func:`marks_for`).
        """
        title_l = title.casefold()
        message_l = message.casefold()
        for key, value in self.tags.items():
            if value.casefold() in tags.get(key.casefold(), frozenset()):
                return True
        if _contains_all(title_l, self.title_contains):
            return True
        if _contains_all(message_l, self.message_contains):
            return True
        if any(title_l.startswith(p.casefold()) for p in self.title_prefix):
            return True
        return any(message_l.startswith(p.casefold()) for p in self.message_prefix)


def _contains_all(haystack: str, needles: tuple[str, ...]) -> bool:
    return bool(needles) and all(n.casefold() in haystack for n in needles)


DEFAULT_H12 = Recogniser(
    tags={"heroku.error_code": "H12"},
    title_contains=("H12", "Request timeout"),
    message_contains=("H12", "Request timeout"),
)
DEFAULT_PAPER_GATE = Recogniser(
    tags={"eyetok.signal": "paper_gate_breach"},
    title_prefix=("Paper gate breach",),
    message_prefix=("Paper gate breach",),
)
DEFAULT_SYNTHETIC_CHECK = Recogniser(
    tags={"eyetok.signal": "synthetic_check_failure", "check.type": "synthetic"},
)


class Recognisers(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The three recognisers; each field's name is the mark it puts on a signal."""

    h12: Recogniser = DEFAULT_H12
    paper_gate: Recogniser = DEFAULT_PAPER_GATE
    synthetic_check: Recogniser = DEFAULT_SYNTHETIC_CHECK


def marks_for(
    recognisers: Recognisers,
    *,
    title: str,
    message: str,
    tags: Iterable[tuple[str, str]] | Mapping[str, str],
) -> frozenset[str]:
    """The names of the recognisers that match this title, message and tags.

    ``tags`` is a sequence of ``(key, value)`` pairs (a key may repeat) or a mapping.
    """
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    seen: dict[str, set[str]] = {}
    for key, value in pairs:
        seen.setdefault(key.casefold(), set()).add(value.casefold())
    by_key = {key: frozenset(values) for key, values in seen.items()}
    return frozenset(
        name
        for name in recognisers.__struct_fields__
        if _recogniser(recognisers, name).matches(title=title, message=message, tags=by_key)
    )


def _recogniser(recognisers: Recognisers, name: str) -> Recogniser:
    value = getattr(recognisers, name)
    assert isinstance(value, Recogniser)
    return value
