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

_SAYS_NO = frozenset({"", "false", "no", "0", "none", "off"})
_LOWER_OR_DIGIT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_UPPER_AS_ZERO = bytes(0 if 65 <= b <= 90 else 1 for b in range(256))  # A-Z -> 0


# The texts normalise remembers, most recent first. A signal's title, message and tag
# values repeat within a burst (one Sentry issue, one Alertmanager rule), a few hundred
# distinct at a time; a title unique to each signal (a Heroku H12 router line, a marker)
# never repeats and only fills the cache. At 4,096 the cache held about 1.2 MB of such
# titles (the normalised text, the text itself and the cache's link) through the
# 5,000-webhook burst (tracemalloc at its peak, issue 20); a long message, 4,096 times.
NORMALISED_REMEMBERED = 512


@functools.lru_cache(maxsize=NORMALISED_REMEMBERED)
def normalise(text: str) -> str:
    """``PaperGate``, ``paper_gate``, ``paper-gate``, ``Paper  gate`` -> ``paper gate``.

    A space goes before every capital that follows a small letter or a digit, and before
    the last capital of a run followed by a small letter (``HTTPError`` -> ``HTTP
    Error``); then every run of whitespace, ``_``, ``.`` and ``-`` is one space, the
    ends are trimmed and the case folded. Done with string methods, not regular
    expressions: a Heroku H12 title (a whole router log line, a new one per request) took
    five times as long and more through ``re``."""
    spaced = _camel_spaced_ascii(text) if text.isascii() else _camel_spaced(text)
    return " ".join(spaced.replace("_", " ").replace(".", " ").replace("-", " ").split()).casefold()


def _camel_spaced_ascii(text: str) -> str:
    capitals = text.encode("ascii").translate(_UPPER_AS_ZERO)
    at = capitals.find(0, 1)
    if at < 0:
        return text
    pieces: list[str] = []
    last = 0
    while at >= 0:
        before = text[at - 1]
        if before in _LOWER_OR_DIGIT or ("A" <= before <= "Z" and text[at + 1 : at + 2].islower()):
            pieces.append(text[last:at])
            last = at
        at = capitals.find(0, at + 1)
    if not pieces:
        return text
    pieces.append(text[last:])
    return " ".join(pieces)


def _camel_spaced(text: str) -> str:
    out: list[str] = []
    for i, char in enumerate(text):
        if i and char.isupper():
            before = text[i - 1]
            after = text[i + 1] if i + 1 < len(text) else ""
            if before.islower() or before.isdigit() or (before.isupper() and after.islower()):
                out.append(" ")
        out.append(char)
    return "".join(out)


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
        return _Matcher(self).matches(
            normalise(title),
            normalise(message),
            tags,
            normalise(issue_type),
            normalise(issue_category),
        )


class _Matcher:
    """A :class:`Recogniser` with every criterion normalised once (:func:`marks_for`
    runs for every alert of a batch; normalising the criteria each time cost more than
    the matching)."""

    __slots__ = (
        "issue_categories",
        "issue_types",
        "message_contains",
        "message_prefix",
        "tag_keys",
        "tags",
        "title_contains",
        "title_prefix",
    )

    def __init__(self, r: Recogniser) -> None:
        self.tags = tuple((normalise(k), normalise(v)) for k, v in r.tags.items())
        self.tag_keys = tuple(normalise(k) for k in r.tag_keys)
        # an empty tuple never matches; a needle that normalises to "" is in any text
        self.title_contains = tuple(normalise(n) for n in r.title_contains)
        self.message_contains = tuple(normalise(n) for n in r.message_contains)
        self.title_prefix = tuple(p for p in map(normalise, r.title_prefix) if p)
        self.message_prefix = tuple(p for p in map(normalise, r.message_prefix) if p)
        self.issue_types = frozenset(normalise(t) for t in r.issue_types)
        self.issue_categories = frozenset(normalise(c) for c in r.issue_categories)

    def tag_keys_read(self) -> set[str]:
        return {k for k, _ in self.tags} | set(self.tag_keys)

    def title_words(self) -> list[tuple[str, ...]]:
        """What a title must hold for a title criterion to match (see :func:`_may_match`)."""
        return _word_groups(self.title_contains, self.title_prefix)

    def message_words(self) -> list[tuple[str, ...]]:
        return _word_groups(self.message_contains, self.message_prefix)

    def matches(
        self,
        title: str,
        message: str,
        tags: Mapping[str, frozenset[str]],
        issue_type: str,
        issue_category: str,
    ) -> bool:
        """Over text already normalised (``title``/``message`` may be "" when no
        criterion reads them)."""
        for key, value in self.tags:
            if value in tags.get(key, frozenset()):
                return True
        for key in self.tag_keys:
            if tags.get(key, frozenset()) - _SAYS_NO:
                return True
        if self.title_contains and all(n in title for n in self.title_contains):
            return True
        if self.message_contains and all(n in message for n in self.message_contains):
            return True
        if _starts_with_any(title, self.title_prefix):
            return True
        if _starts_with_any(message, self.message_prefix):
            return True
        if issue_type and issue_type in self.issue_types:
            return True
        return bool(issue_category) and issue_category in self.issue_categories


class _Compiled:
    """The matchers of one :class:`Recognisers`, and which facts any of them reads."""

    __slots__ = (
        "key_reads",
        "marks_of_nothing",
        "matchers",
        "message_groups",
        "source",
        "tag_keys",
        "title_groups",
    )

    def __init__(self, recognisers: Recognisers) -> None:
        self.source = recognisers
        self.matchers = tuple(
            (name, _Matcher(_recogniser(recognisers, name)))
            for name in recognisers.__struct_fields__
        )
        self.tag_keys = frozenset(k for _, m in self.matchers for k in m.tag_keys_read())
        self.title_groups = _groups(g for _, m in self.matchers for g in m.title_words())
        self.message_groups = _groups(g for _, m in self.matchers for g in m.message_words())
        # a tag key as sent -> its normalised form when a recogniser reads it, else None
        # (labels repeat from alert to alert: ``instance``, ``job``, ``severity`` ...)
        self.key_reads: dict[str, str | None] = {}
        # the marks when no fact can be read (the usual alert): the same for every such alert
        self.marks_of_nothing = frozenset(
            name for name, m in self.matchers if m.matches("", "", {}, "", "")
        )

    def key_read(self, key: str) -> str | None:
        """``key`` normalised when a recogniser reads that key, else None (remembered)."""
        try:
            return self.key_reads[key]
        except KeyError:
            pass
        if len(self.key_reads) >= _KEY_READS_MAX:
            self.key_reads.clear()
        k = normalise(key)
        read = self.key_reads[key] = k if k in self.tag_keys else None
        return read


_KEY_READS_MAX = 4096  # distinct tag keys remembered per configuration (then forgotten)


def _word_groups(contains: tuple[str, ...], prefixes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The words a text must hold for one of these criteria to match: the first word of
    every ``contains`` needle, all of them; or the first word of one prefix."""
    groups: list[tuple[str, ...]] = [(p.split(" ", 1)[0],) for p in prefixes]
    if contains:
        groups.append(tuple(sorted({n.split(" ", 1)[0] for n in contains})))
    return groups


def _groups(groups: Iterable[tuple[str, ...]]) -> tuple[tuple[str, ...], ...] | None:
    """The distinct groups, fewest words first (None: no criterion reads this text)."""
    unique = sorted(set(groups), key=lambda g: (len(g), g))
    return tuple(unique) if unique else None


def _may_match(text: str, groups: tuple[tuple[str, ...], ...] | None) -> bool:
    """False only when no title (or message) criterion can match ``text``, so it need not
    be normalised. A criterion's first word has no separator and no space in it, and
    normalising only turns separators into spaces, adds spaces between camelCase words
    and lowers the case: a word of the normalised text is a substring of the lowered
    ASCII text. A ``*_contains`` criterion needs every needle, so every needle's first
    word (a group); a prefix needs its own. Non-ASCII text (where case folding may change
    lengths) is always read."""
    if groups is None:
        return False
    if not text.isascii():
        return True
    lowered = text.lower()
    for group in groups:
        for word in group:
            if word not in lowered:
                break
        else:
            return True
    return False


_COMPILED: dict[int, _Compiled] = {}
_COMPILED_MAX = 16  # a config reload makes new Recognisers; old ones are dropped past this


def _compiled(recognisers: Recognisers) -> _Compiled:
    found = _COMPILED.get(id(recognisers))
    if found is not None and found.source is recognisers:
        return found
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    compiled = _COMPILED[id(recognisers)] = _Compiled(recognisers)
    return compiled


def _starts_with_any(text: str, prefixes: tuple[str, ...]) -> bool:
    """``prefixes`` normalised and not empty: whole words only."""
    for p in prefixes:
        if text.startswith(p) and (len(text) == len(p) or not text[len(p)].isalnum()):
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
    compiled = _compiled(recognisers)
    reads = compiled.key_reads
    # a tuple first: the isinstance check against the Mapping ABC costs more than the rest
    pairs = tags if isinstance(tags, tuple) or not isinstance(tags, Mapping) else tags.items()
    seen: dict[str, set[str]] = {}
    for key, value in pairs:
        k = reads[key] if key in reads else compiled.key_read(key)
        if k is not None:  # a value no recogniser reads is not normalised
            seen.setdefault(k, set()).add(normalise(value))
    title_read = normalise(title) if _may_match(title, compiled.title_groups) else ""
    message_read = normalise(message) if _may_match(message, compiled.message_groups) else ""
    type_read = normalise(issue_type) if issue_type else ""
    category_read = normalise(issue_category) if issue_category else ""
    if not (seen or title_read or message_read or type_read or category_read):
        return compiled.marks_of_nothing
    by_key = {key: frozenset(values) for key, values in seen.items()}
    return frozenset(
        name
        for name, matcher in compiled.matchers
        if matcher.matches(title_read, message_read, by_key, type_read, category_read)
    )


def _recogniser(recognisers: Recognisers, name: str) -> Recogniser:
    value = getattr(recognisers, name)
    assert isinstance(value, Recogniser)
    return value
