"""How EyeTok recognises the three special signals of the severity table, as data.

Design section 2 gives three rows that no Sentry level describes: a Heroku H12 request
timeout (arriving through Sentry's log integration), a paper gate breach (a custom
event) and a synthetic check failure. A :class:`Recogniser` says how to spot one of
them in a signal's title, message, tags and (Sentry issues) issue type and category;
:class:`Recognisers` holds the three, each with the documented default, and
:func:`marks_for` names the ones that match. The severity rules read those names from
``Signal.marks``. Nothing else of a payload is read: a stack frame or a breadcrumb that
mentions "synthetic" does not make a synthetic check.

Senders spell things their own way (``paper_gate``, ``paper-gate``, ``PaperGate``,
"Paper gate breach"), so every comparison is made on :func:`normalise`\\ d text: camelCase
split into words, ``_``, ``-``, ``.`` and whitespace read as one space, case folded.

A recogniser matches when **any** of its criteria matches:

* ``tags``: any one of these ``key: value`` pairs is among the signal's tags;
* ``tag_keys``: the signal has a tag with one of these keys, whatever its value (but
  not a value that says no: ``false``, ``no``, ``0``, ``none``, ``off``, empty);
* ``title_contains``: the title contains **every** one of these strings;
* ``message_contains``: the message contains **every** one of these strings;
* ``title_prefix``: the title starts with any one of these (whole words);
* ``message_prefix``: the message starts with any one of these (whole words);
* ``issue_types`` / ``issue_categories``: a Sentry issue's ``issueType`` /
  ``issueCategory`` is one of these.

A criterion left empty never matches, so a recogniser with no criteria (``h12: {}`` in
YAML) is switched off.

The defaults:

=================== ================================================================
``h12``             title or message contains ``H12`` and ``Request timeout``; or tag
                    ``heroku.error_code`` is ``H12``
``paper_gate``      tag ``eyetok.signal`` is ``paper_gate_breach``; or a tag keyed
                    ``paper_gate`` or ``paper_gate_breach``; or title or message
                    starts with ``Paper gate breach``
``synthetic_check`` tag ``eyetok.signal`` is ``synthetic_check_failure``, ``check.type``
                    is ``synthetic`` or ``check`` is ``failed``; or a tag keyed
                    ``synthetic`` or ``synthetic_check``; or title or message starts
                    with ``Synthetic check failed``/``failure``; or a Sentry Uptime
                    issue (type ``uptime_domain_failure``, category ``uptime``)
=================== ================================================================

Sentry files Uptime issues under category ``outage`` in its newer taxonomy, beside cron
monitor failures (``monitor_check_in_failure``); a missed cron check-in is not a
synthetic check, so the default reads the issue type, not that category.

Build from configuration with ``msgspec.convert(mapping, Recognisers)``; unknown keys
are refused, and a recogniser that is named replaces its default as a whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import msgspec

__all__ = [
    "DEFAULT_H12",
    "DEFAULT_PAPER_GATE",
    "DEFAULT_SYNTHETIC_CHECK",
    "Recogniser",
    "Recognisers",
    "marks_for",
    "normalise",
]

_SEPARATORS = re.compile(r"[\s_.\-]+")
_SAYS_NO = frozenset({"", "false", "no", "0", "none", "off"})


_CAMEL_ASCII = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """``PaperGate``, ``paper_gate``, ``paper-gate``, ``Paper  gate`` -> ``paper gate``."""
    if text.isascii():
        spaced = _CAMEL_ASCII.sub(" ", text)
    else:
        out: list[str] = []
        for i, char in enumerate(text):
            if i and char.isupper():
                before = text[i - 1]
                after = text[i + 1] if i + 1 < len(text) else ""
                if before.islower() or before.isdigit() or (before.isupper() and after.islower()):
                    out.append(" ")
            out.append(char)
        spaced = "".join(out)
    return _SEPARATORS.sub(" ", spaced).strip().casefold()


class Recogniser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One way to spot a special signal; matches when any criterion matches."""

    tags: dict[str, str] = {}
    tag_keys: tuple[str, ...] = ()
    title_contains: tuple[str, ...] = ()
    message_contains: tuple[str, ...] = ()
    title_prefix: tuple[str, ...] = ()
    message_prefix: tuple[str, ...] = ()
    issue_types: tuple[str, ...] = ()
    issue_categories: tuple[str, ...] = ()

    def matches(
        self,
        *,
        title: str,
        message: str,
        tags: Mapping[str, frozenset[str]],
        issue_type: str = "",
        issue_category: str = "",
    ) -> bool:
        """Whether this recogniser matches.

        ``title`` and ``message`` are as sent; ``tags`` maps normalised keys to the
        normalised values seen for that key (see :func:`marks_for`).
        """
        return self._matches(
            normalise(title),
            normalise(message),
            tags,
            normalise(issue_type),
            normalise(issue_category),
        )

    def _matches(
        self,
        title: str,
        message: str,
        tags: Mapping[str, frozenset[str]],
        issue_type: str,
        issue_category: str,
    ) -> bool:
        """:meth:`matches` over text already normalised."""
        for key, value in self.tags.items():
            if normalise(value) in tags.get(normalise(key), frozenset()):
                return True
        for key in self.tag_keys:
            if tags.get(normalise(key), frozenset()) - _SAYS_NO:
                return True
        if _contains_all(title, self.title_contains):
            return True
        if _contains_all(message, self.message_contains):
            return True
        if _starts_with_any(title, self.title_prefix):
            return True
        if _starts_with_any(message, self.message_prefix):
            return True
        if issue_type and any(issue_type == normalise(t) for t in self.issue_types):
            return True
        return bool(issue_category) and any(
            issue_category == normalise(c) for c in self.issue_categories
        )


def _contains_all(haystack: str, needles: tuple[str, ...]) -> bool:
    return bool(needles) and all(normalise(n) in haystack for n in needles)


def _starts_with_any(text: str, prefixes: tuple[str, ...]) -> bool:
    for prefix in prefixes:
        p = normalise(prefix)
        if p and text.startswith(p) and (len(text) == len(p) or not text[len(p)].isalnum()):
            return True
    return False


DEFAULT_H12 = Recogniser(
    tags={"heroku.error_code": "H12"},
    title_contains=("H12", "Request timeout"),
    message_contains=("H12", "Request timeout"),
)
DEFAULT_PAPER_GATE = Recogniser(
    tags={"eyetok.signal": "paper_gate_breach"},
    tag_keys=("paper_gate", "paper_gate_breach"),
    title_prefix=("Paper gate breach",),
    message_prefix=("Paper gate breach",),
)
DEFAULT_SYNTHETIC_CHECK = Recogniser(
    tags={
        "eyetok.signal": "synthetic_check_failure",
        "check.type": "synthetic",
        "check": "failed",
    },
    tag_keys=("synthetic", "synthetic_check"),
    title_prefix=("Synthetic check failed", "Synthetic check failure"),
    message_prefix=("Synthetic check failed", "Synthetic check failure"),
    issue_types=("uptime_domain_failure",),
    issue_categories=("uptime",),
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
    issue_type: str = "",
    issue_category: str = "",
) -> frozenset[str]:
    """The names of the recognisers that match this title, message, tags and issue kind.

    ``tags`` is a sequence of ``(key, value)`` pairs (a key may repeat) or a mapping.
    """
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    seen: dict[str, set[str]] = {}
    for key, value in pairs:
        seen.setdefault(normalise(key), set()).add(normalise(value))
    by_key = {key: frozenset(values) for key, values in seen.items()}
    facts = (
        normalise(title),
        normalise(message),
        by_key,
        normalise(issue_type),
        normalise(issue_category),
    )
    return frozenset(
        name
        for name in recognisers.__struct_fields__
        if _recogniser(recognisers, name)._matches(*facts)
    )


def _recogniser(recognisers: Recognisers, name: str) -> Recogniser:
    value = getattr(recognisers, name)
    assert isinstance(value, Recogniser)
    return value
