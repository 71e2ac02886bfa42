"""Recognisers: the defaults, spelling-insensitivity, and configuration as data."""

from __future__ import annotations

import re

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from eyetok import recognisers as rec_module
from eyetok.recognisers import (
    DEFAULT_H12,
    DEFAULT_PAPER_GATE,
    DEFAULT_SYNTHETIC_CHECK,
    Recogniser,
    Recognisers,
    marks_for,
    normalise,
)

DEFAULTS = Recognisers()


def marks(
    title: str = "",
    message: str = "",
    tags: tuple[tuple[str, str], ...] = (),
    issue_type: str = "",
    issue_category: str = "",
) -> frozenset[str]:
    return marks_for(
        DEFAULTS,
        title=title,
        message=message,
        tags=tags,
        issue_type=issue_type,
        issue_category=issue_category,
    )


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULTS.h12 == DEFAULT_H12
    assert DEFAULTS.paper_gate == DEFAULT_PAPER_GATE
    assert DEFAULTS.synthetic_check == DEFAULT_SYNTHETIC_CHECK
    assert DEFAULT_H12.tags == {"heroku.error_code": "H12"}
    assert DEFAULT_SYNTHETIC_CHECK.tags == {
        "eyetok.signal": "synthetic_check_failure",
        "check.type": "synthetic",
        "check": "failed",
    }
    assert DEFAULT_SYNTHETIC_CHECK.issue_types == ("uptime_domain_failure",)


def test_nothing_matches_an_ordinary_error() -> None:
    assert marks("KeyError: 'x'", "", (("handled", "no"),)) == frozenset()


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ('at=error code=H12 desc="Request timeout" method=GET', ""),
        ("", 'at=error code=h12 desc="request TIMEOUT"'),
        ("Heroku H12 Request Timeout on web.1", "anything"),
    ],
)
def test_h12_by_text(title: str, message: str) -> None:
    assert marks(title, message) == frozenset({"h12"})


def test_h12_needs_both_words_in_one_field() -> None:
    assert marks("code=H12", "") == frozenset()
    assert marks("Request timeout", "") == frozenset()
    assert marks("code=H12", "Request timeout") == frozenset()


def test_h12_by_tag_is_case_insensitive() -> None:
    assert marks(tags=(("Heroku.Error_Code", "h12"),)) == frozenset({"h12"})
    assert marks(tags=(("heroku.error_code", "H13"),)) == frozenset()


@pytest.mark.parametrize(
    ("title", "message", "tags"),
    [
        ("Paper gate breach: strategy x", "", ()),
        ("", "paper GATE breach on mean-revert-7", ()),
        ("Drawdown", "", (("eyetok.signal", "Paper_Gate_Breach"),)),
    ],
)
def test_paper_gate(title: str, message: str, tags: tuple[tuple[str, str], ...]) -> None:
    assert marks(title, message, tags) == frozenset({"paper_gate"})


def test_paper_gate_is_a_prefix_not_a_substring() -> None:
    assert marks("Alert: Paper gate breach", "") == frozenset()


@pytest.mark.parametrize(
    "tags",
    [(("eyetok.signal", "synthetic_check_failure"),), (("check.type", "SYNTHETIC"),)],
)
def test_synthetic_check(tags: tuple[tuple[str, str], ...]) -> None:
    assert marks("Checkout failed", "", tags) == frozenset({"synthetic_check"})


def test_several_marks_at_once_and_repeated_tag_keys() -> None:
    tags = (("check.type", "http"), ("check.type", "synthetic"))
    got = marks("Paper gate breach via H12 request timeout", "", tags)
    assert got == frozenset({"h12", "paper_gate", "synthetic_check"})


def test_tags_may_be_a_mapping() -> None:
    got = marks_for(DEFAULTS, title="", message="", tags={"check.type": "synthetic"})
    assert got == frozenset({"synthetic_check"})


def test_an_empty_recogniser_never_matches() -> None:
    off = Recogniser()
    assert not off.matches(title="", message="", tags={})
    assert not off.matches(title="H12 Request timeout", message="x", tags={})


def test_built_from_yaml_with_msgspec_convert() -> None:
    config = yaml.safe_load(
        """
        h12:
          tags: {router.code: H12}
          message_contains: [H12]
        paper_gate:
          title_prefix: ["[PAPER]", "Paper gate breach"]
        """
    )
    custom = msgspec.convert(config, Recognisers)
    assert custom.h12 == Recogniser(tags={"router.code": "H12"}, message_contains=("H12",))
    assert custom.synthetic_check == DEFAULT_SYNTHETIC_CHECK
    got = marks_for(custom, title="[paper] gate", message="code=H12", tags=())
    assert got == frozenset({"h12", "paper_gate"})
    # A named recogniser replaces its default as a whole: the default tag is gone.
    old_tag = (("heroku.error_code", "H12"),)
    assert marks_for(custom, title="", message="", tags=old_tag) == frozenset()


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"h13": {}}, "h13"),
        ({"h12": {"title_has": ["x"]}}, "$.h12"),
        ({"h12": {"tags": {"a": 1}}}, "$.h12.tags[...]"),
        ({"paper_gate": {"title_prefix": "Paper"}}, "$.paper_gate.title_prefix"),
    ],
)
def test_bad_config_is_refused_with_its_path(config: object, where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(where)):
        msgspec.convert(config, Recognisers)


def test_recognisers_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULTS.h12 = Recogniser()  # type: ignore[misc]


# --- how senders spell things (issue 13) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("paper_gate", "paper gate"),
        ("paper-gate", "paper gate"),
        ("PaperGate", "paper gate"),
        ("PAPER_GATE", "paper gate"),
        ("Paper  gate\tbreach", "paper gate breach"),
        ("heroku.error_code", "heroku error code"),
        ("HTTPError", "http error"),
        ("H12", "h12"),
        ("SyntheticCheckÉchoué", "synthetic check échoué"),
    ],
)
def test_normalise_reads_case_and_separators_alike(text: str, normal: str) -> None:
    assert normalise(text) == normal


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATOR_RUN = re.compile(r"[\s_.\-]+")


def _normalised_by_re(text: str) -> str:
    """The reading :func:`normalise` documents, in regular expressions (ASCII text; its
    non-ASCII branch is the same code either way)."""
    return _SEPARATOR_RUN.sub(" ", _CAMEL_BOUNDARY.sub(" ", text)).strip().casefold()


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet='aZbY09 _.-\t\n\x0b\x1cAbCDeFGhIJKlMN=[]"/', max_size=40))
def test_normalise_without_re_reads_ascii_text_as_the_regular_expressions_do(text: str) -> None:
    assert normalise.__wrapped__(text) == _normalised_by_re(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_normalise_trims_and_joins_on_whatever_re_calls_whitespace(text: str) -> None:
    spaced = normalise.__wrapped__(text)
    assert spaced == _SEPARATOR_RUN.sub(" ", spaced).strip()  # no run left, no ends
    if text.isascii():
        assert spaced == _normalised_by_re(text)


@pytest.mark.parametrize(
    "tags",
    [
        (("paper_gate", "strategy-7"),),
        (("paper-gate", "1"),),
        (("PaperGate", "breached"),),
        (("PAPER_GATE_BREACH", "mean-revert"),),
        (("eyetok.signal", "PaperGateBreach"),),
        (("Eyetok-Signal", "paper gate breach"),),
    ],
)
def test_paper_gate_by_any_spelling_of_its_tag(tags: tuple[tuple[str, str], ...]) -> None:
    assert marks("Drawdown limit", "", tags) == frozenset({"paper_gate"})


@pytest.mark.parametrize(
    "title",
    [
        "Paper gate breach",
        "paper-gate breach: ståle",
        "PaperGateBreach on acct 12",
        "PAPER_GATE_BREACH",
    ],
)
def test_paper_gate_by_any_spelling_of_its_title(title: str) -> None:
    assert marks(title) == frozenset({"paper_gate"})


def test_a_prefix_is_whole_words() -> None:
    assert marks("Paper gate breaches are tracked", "") == frozenset()


@pytest.mark.parametrize(
    ("title", "tags", "issue_type", "issue_category"),
    [
        ("Checkout", (("synthetic", "checkout-flow"),), "", ""),
        ("Checkout", (("Synthetic-Check", "login"),), "", ""),
        ("Checkout", (("check", "FAILED"),), "", ""),
        ("Checkout", (("CheckType", "synthetic"),), "", ""),
        ("Synthetic check failed: /login returned 503", (), "", ""),
        ("synthetic_check_failure — /paiement", (), "", ""),
        ("Downtime detected for https://raxx.example", (), "uptime_domain_failure", "outage"),
        ("Downtime detected for https://raxx.example", (), "", "uptime"),
    ],
)
def test_synthetic_check_by_tag_key_title_or_sentry_uptime(
    title: str, tags: tuple[tuple[str, str], ...], issue_type: str, issue_category: str
) -> None:
    got = marks(title, "", tags, issue_type=issue_type, issue_category=issue_category)
    assert got == frozenset({"synthetic_check"})


@pytest.mark.parametrize(
    ("title", "tags", "issue_type", "issue_category"),
    [
        # A tag whose value says no is not a synthetic check.
        ("Checkout", (("synthetic", "false"),), "", ""),
        ("Checkout", (("check", "passed"),), "", ""),
        # A missed cron check-in shares Sentry's "outage" category; it is not one.
        ("Missed check-in", (), "monitor_check_in_failure", "outage"),
        # The word alone, mid-title, is not a failing check.
        ("ValueError: synthetic account id", (), "", ""),
    ],
)
def test_what_is_not_a_synthetic_check(
    title: str, tags: tuple[tuple[str, str], ...], issue_type: str, issue_category: str
) -> None:
    got = marks(title, "", tags, issue_type=issue_type, issue_category=issue_category)
    assert got == frozenset()


def test_tag_keys_and_issue_kinds_are_configurable() -> None:
    config = yaml.safe_load(
        """
        synthetic_check:
          tag_keys: [probe_run]
          issue_types: [monitor_check_in_failure]
        """
    )
    custom = msgspec.convert(config, Recognisers)
    assert marks_for(custom, title="", message="", tags={"ProbeRun": "x"}) == {"synthetic_check"}
    got = marks_for(custom, title="", message="", tags=(), issue_type="monitor_check_in_failure")
    assert got == frozenset({"synthetic_check"})
    assert marks_for(custom, title="", message="", tags={"synthetic": "x"}) == frozenset()


# --- marks_for's shortcuts (criteria normalised once, text normalised only when a
# criterion can read it) give exactly the marks of the plain reading ---------------------

_WORDS = st.sampled_from(
    [
        "H12", "h12", "Request", "request", "timeout", "RequestTimeout", "Paper", "paper",
        "PaperGate", "gate", "breach", "Synthetic", "synthetic", "check", "failed",
        "failure", "Pod", "is", "crash", "looping", "Straße", "ÉCHEC", "x9", "",
    ]
)  # fmt: skip
_SEPS = st.sampled_from([" ", "_", "-", ".", "  ", "", "\t"])
_TEXT = st.lists(st.tuples(_WORDS, _SEPS), max_size=6).map(
    lambda parts: "".join(w + s for w, s in parts)
)
_TAG_KEYS = st.sampled_from(
    ["heroku.error_code", "eyetok.signal", "check.type", "check", "synthetic", "paper_gate",
     "instance", "severity", "CheckType"]
)  # fmt: skip
_TAG_VALUES = st.sampled_from(
    ["H12", "paper_gate_breach", "synthetic", "failed", "false", "no", "0", "", "yes",
     "synthetic_check_failure", "host-1:9100"]
)  # fmt: skip


def _plain_marks(
    recognisers: Recognisers, title: str, message: str, tags: tuple[tuple[str, str], ...]
) -> frozenset[str]:
    """The documented reading, criterion by criterion, everything normalised each time."""
    seen: dict[str, set[str]] = {}
    for key, value in tags:
        seen.setdefault(normalise(key), set()).add(normalise(value))
    t, m = normalise(title), normalise(message)
    found = set()
    for name in recognisers.__struct_fields__:
        r: Recogniser = getattr(recognisers, name)

        def starts(text: str, prefixes: tuple[str, ...]) -> bool:
            return any(
                (p := normalise(x))
                and text.startswith(p)
                and (len(text) == len(p) or not text[len(p)].isalnum())
                for x in prefixes
            )

        if (
            any(normalise(v) in seen.get(normalise(k), set()) for k, v in r.tags.items())
            or any(
                seen.get(normalise(k), set()) - {"", "false", "no", "0", "none", "off"}
                for k in r.tag_keys
            )
            or (bool(r.title_contains) and all(normalise(n) in t for n in r.title_contains))
            or (bool(r.message_contains) and all(normalise(n) in m for n in r.message_contains))
            or starts(t, r.title_prefix)
            or starts(m, r.message_prefix)
        ):
            found.add(name)
    return frozenset(found)


@settings(max_examples=400, deadline=None)
@given(
    title=_TEXT,
    message=_TEXT,
    tags=st.lists(st.tuples(_TAG_KEYS, _TAG_VALUES), max_size=4).map(tuple),
)
def test_marks_for_gives_the_plain_readings_marks(
    title: str, message: str, tags: tuple[tuple[str, str], ...]
) -> None:
    for recognisers in (DEFAULTS, CUSTOM_FOR_SHORTCUTS):
        assert marks_for(recognisers, title=title, message=message, tags=tags) == _plain_marks(
            recognisers, title, message, tags
        )


CUSTOM_FOR_SHORTCUTS = Recognisers(
    h12=Recogniser(title_contains=("crash looping", "Pod"), message_prefix=("x9",)),
    paper_gate=Recogniser(tag_keys=("CheckType",), title_prefix=("", "Straße")),
    synthetic_check=Recogniser(message_contains=("_",)),  # normalised to "": any message
)


def test_tags_read_the_same_as_pairs_a_list_or_a_mapping() -> None:
    pairs = (("instance", "web-1:9100"), ("check.type", "synthetic"))
    for tags in (pairs, list(pairs), dict(pairs)):
        assert marks_for(DEFAULTS, title="", message="", tags=tags) == {"synthetic_check"}


def test_tag_keys_past_the_remembered_ones_still_read() -> None:
    """The tag keys read (or not) are remembered per configuration, at most a few thousand;
    a flood of distinct keys forgets them and reads each again, with the same marks."""
    custom = Recognisers(h12=Recogniser(tag_keys=("PaperRun",)))
    many = tuple((f"label_{i}", "x") for i in range(rec_module._KEY_READS_MAX + 10))
    assert marks_for(custom, title="", message="", tags=many) == frozenset()
    assert len(rec_module._compiled(custom).key_reads) <= rec_module._KEY_READS_MAX
    for key in ("paper_run", "paper-run", "PaperRun"):
        assert marks_for(custom, title="", message="", tags=((key, "yes"),)) == {"h12"}
        assert marks_for(custom, title="", message="", tags=((key, "off"),)) == frozenset()


def test_a_text_without_every_word_a_contains_criterion_needs_is_not_read() -> None:
    """A title or message is normalised and read only when it holds, lower-cased, the
    first word of every needle of a ``*_contains`` criterion or of one prefix: an
    Alertmanager description that mentions "requests" but not H12 is not read, one with
    both is, and the marks are the plain reading's either way."""
    groups = rec_module._compiled(DEFAULTS).message_groups
    plain = "5xx responses are 6.2% of requests on raptor-api-7 for the last 5 minutes."
    assert not rec_module._may_match(plain, groups)
    assert rec_module._may_match("H12 Request timeout on web.1", groups)
    assert rec_module._may_match("at=error code=H12 desc=RequestTimeout", groups)
    assert rec_module._may_match("Synthetic check failed", groups)
    assert rec_module._may_match("Zeitüberschreitung", groups)  # not ASCII: always read
    assert marks(message=plain) == frozenset()
    assert marks(message="at=error code=H12 desc=RequestTimeout") == {"h12"}
    assert marks(message="desc=RequestTimeout code=h12") == {"h12"}  # any order


def test_a_flood_of_unique_titles_leaves_few_remembered() -> None:
    """A title unique to each signal (an H12 router line) never repeats: through a
    5,000-signal burst the normalise cache keeps at most a few hundred of them, and a
    text that repeats is still answered from it."""
    normalise.cache_clear()
    for n in range(5_000):
        title = f'at=error code=H12 desc="Request timeout" path=/r/{n} request_id=req-{n}'
        marks(title=title, message="Request timeout")
    assert normalise.cache_info().currsize <= 512
    assert normalise("Request timeout") == "request timeout"
    before = normalise.cache_info().hits
    assert normalise("Request timeout") == "request timeout"
    assert normalise.cache_info().hits == before + 1
