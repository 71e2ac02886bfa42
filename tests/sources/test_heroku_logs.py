"""The logplex framing and the recognition of Heroku's error lines (pure: no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyetok.config import Settings, parse_file_config, settings_from
from eyetok.errors import ConfigError
from eyetok.messages import SevChannel, Severity, SignalKind
from eyetok.severity import classify
from eyetok.sources import heroku_logs, logplex
from eyetok.sources.heroku_logs import DEFAULT_CODES
from tests.sources import heroku_lines as lines

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 22:00 ET on a Monday: outside hours


def signals(*messages: str, codes: frozenset[str] = DEFAULT_CODES) -> list[heroku_logs.Signal]:
    counter = itertools.count(1)
    return heroku_logs.normalise(
        (m.encode() for m in messages),
        tenant="acme",
        app="raxx-prod",
        codes=codes,
        received_at=AT,
        new_id=lambda: f"sig_{next(counter)}",
    )


# --- framing ----------------------------------------------------------------------------


def test_a_single_frame_is_its_message() -> None:
    framed = logplex.frames(lines.body(lines.h12()))
    assert framed.bad == ()
    assert framed.messages == ((0, lines.h12().encode()),)


def test_many_frames_are_split_by_their_length_prefixes() -> None:
    messages = [lines.h12(), lines.info(1), lines.r15(), lines.app_line(2)]
    body = lines.body(*messages)
    framed = logplex.frames(body)
    assert framed.bad == ()
    assert [m for _, m in framed.messages] == [m.encode() for m in messages]
    offsets = [o for o, _ in framed.messages]
    assert offsets[0] == 0
    assert body[offsets[2] :].startswith(lines.frame(lines.r15()))


def test_spaces_and_newlines_inside_a_frame_stay_inside_it() -> None:
    multiline = lines.dyno("web.1", "Traceback (most recent call last):\n  File x\n12 <40>1 fake")
    framed = logplex.frames(lines.body(multiline, lines.h12()))
    assert framed.bad == ()
    assert [m.decode() for _, m in framed.messages] == [multiline, lines.h12()]


def test_a_truncated_frame_is_named_by_its_offset_and_the_frames_before_it_are_kept() -> None:
    good = lines.body(lines.h12(), lines.info())
    body = good + lines.frame(lines.r15())[:-20]
    framed = logplex.frames(body)
    assert [m.decode() for _, m in framed.messages] == [lines.h12(), lines.info()]
    [bad] = framed.bad
    assert bad.offset == len(good)
    assert bad.reason.startswith("truncated: the frame declares")


def test_a_garbled_prefix_loses_only_its_frame() -> None:
    first = lines.frame(lines.h12())
    garbled = b"x7 " + lines.r15().encode()
    body = first + garbled + lines.frame(lines.crashed())
    framed = logplex.frames(body)
    assert [m.decode() for _, m in framed.messages] == [lines.h12(), lines.crashed()]
    [bad] = framed.bad
    assert bad.offset == len(first)
    assert "expected a length prefix" in bad.reason


def test_a_length_too_long_swallows_a_neighbour_which_is_reported_not_the_rest() -> None:
    one, two, three = lines.frame(lines.h12()), lines.frame(lines.info()), lines.r15()
    wrong = str(len(lines.h12()) + 10).encode() + one[one.index(b" ") :]
    framed = logplex.frames(wrong + two + lines.frame(three))
    assert framed.messages[-1][1].decode() == three
    assert [b.offset for b in framed.bad] == [len(wrong) + 10]


def test_a_message_that_is_not_syslog_is_a_bad_frame() -> None:
    framed = logplex.frames(b"5 hello" + lines.body(lines.h12()))
    assert [b.offset for b in framed.bad] == [0]
    assert "syslog" in framed.bad[0].reason
    assert [m.decode() for _, m in framed.messages] == [lines.h12()]


def test_an_empty_body_has_no_frames() -> None:
    assert logplex.frames(b"") == logplex.Framed(messages=(), bad=())


# --- recognition ------------------------------------------------------------------------


def test_an_h12_is_a_high_signal_keyed_by_app_code_and_dyno_type() -> None:
    [signal] = signals(lines.h12("web.3"))
    assert signal.kind is SignalKind.ALERT
    assert signal.dedup_key == "heroku:raxx-prod:H12:web"
    assert signal.title == "raxx-prod web: H12 Request timeout"
    assert signal.culprit == "POST /api/v1/orders/bulk"
    tags = dict(signal.tags)
    assert (tags["heroku.error_code"], tags["dyno"], tags["status"]) == ("H12", "web.3", "503")
    routing = classify(signal)
    assert (routing.rule, routing.severity) == ("heroku-h12", Severity.HIGH)
    assert routing.sev_channel == SevChannel.SEV2


@pytest.mark.parametrize(
    ("line", "key", "rule", "severity"),
    [
        (lines.r15("worker.2"), "heroku:raxx-prod:R15:worker", "heroku-r15", Severity.CRITICAL),
        (
            lines.router("H10", "App crashed", dyno=""),
            "heroku:raxx-prod:H10:web",
            "heroku-h10",
            Severity.CRITICAL,
        ),
        (lines.crashed("web.2"), "heroku:raxx-prod:crashed:web", "heroku-crashed", Severity.HIGH),
        (lines.r14("web.1"), "heroku:raxx-prod:R14:web", "heroku-r14", Severity.MEDIUM),
        (
            lines.router("H13", "Connection closed without response"),
            "heroku:raxx-prod:H13:web",
            "heroku-h13",
            Severity.MEDIUM,
        ),
        (
            lines.router("H18", "Server Request Interrupted"),
            "heroku:raxx-prod:H18:web",
            "heroku-h18",
            Severity.MEDIUM,
        ),
    ],
)
def test_each_documented_error_has_its_named_rule(
    line: str, key: str, rule: str, severity: Severity
) -> None:
    [signal] = signals(line)
    assert signal.dedup_key == key
    routing = classify(signal)
    assert (routing.rule, routing.severity) == (rule, severity)


def test_r15_is_sev1() -> None:
    [signal] = signals(lines.r15())
    assert signal.title == "raxx-prod worker: R15 Memory quota vastly exceeded"
    assert classify(signal).sev_channel == SevChannel.SEV1


def test_h27_and_h28_only_when_configured() -> None:
    h27 = lines.router("H27", "Client Request Interrupted", status=499)
    h28 = lines.router("H28", "Client Connection Idle")
    assert signals(h27, h28) == []
    both = signals(h27, h28, codes=DEFAULT_CODES | {"H27", "H28"})
    assert [classify(s).rule for s in both] == ["heroku-h27", "heroku-h28"]
    assert {classify(s).severity for s in both} == {Severity.LOW}


def test_another_configured_router_code_falls_to_the_default_rule() -> None:
    [signal] = signals(lines.router("H14", "No web dynos running"), codes=frozenset({"H14"}))
    assert (signal.dedup_key, classify(signal).rule) == ("heroku:raxx-prod:H14:web", "default")


def test_ordinary_lines_and_the_apps_own_lines_are_not_signals() -> None:
    fake_h12 = lines.dyno("web.1", 'at=error code=H12 desc="Request timeout"', app="app")
    crash_talk = lines.dyno("web.1", "State changed from starting to up")
    assert signals(lines.info(), lines.app_line(), fake_h12, crash_talk) == []


def test_a_storm_across_the_web_dynos_is_one_key() -> None:
    storm = signals(*[lines.h12(f"web.{n % 4 + 1}") for n in range(50)])
    assert {s.dedup_key for s in storm} == {"heroku:raxx-prod:H12:web"}
    assert len({s.signal_id for s in storm}) == 50


# --- any body ---------------------------------------------------------------------------

_MESSAGES = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).map(
        lambda text: f"<40>1 {lines.TS} host app web.1 - {text}\n"
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(messages=_MESSAGES)
def test_any_well_framed_body_gives_back_exactly_its_messages(messages: list[str]) -> None:
    framed = logplex.frames(lines.body(*messages))
    assert framed.bad == ()
    assert [m.decode() for _, m in framed.messages] == messages


@settings(max_examples=300, deadline=None)
@given(messages=_MESSAGES, cut=st.integers(min_value=0), junk=st.binary(max_size=12))
def test_any_damaged_body_is_read_without_error_and_its_offsets_are_in_order(
    messages: list[str], cut: int, junk: bytes
) -> None:
    body = lines.body(*messages)
    at = cut % (len(body) + 1)
    damaged = body[:at] + junk + body[at:]
    framed = logplex.frames(damaged)
    offsets = sorted([o for o, _ in framed.messages] + [b.offset for b in framed.bad])
    assert len(set(offsets)) == len(offsets)
    assert all(0 <= o < len(damaged) for o in offsets)
    # every frame wholly before the damage is read
    before = [m for n, m in enumerate(messages) if len(lines.body(*messages[: n + 1])) <= at]
    assert [m.decode() for _, m in framed.messages[: len(before)]] == before


# --- configuration ------------------------------------------------------------------------


def _drain_settings(drain: str, env: dict[str, str] | None = None) -> Settings:
    config = (
        f"tenants:\n  operator: {{tier: operator}}\n  acme: {{tier: team, heroku_drain: {drain}}}\n"
    )
    return settings_from(parse_file_config(config), env or {})


def test_a_drain_reads_its_password_from_the_named_variable() -> None:
    settings = _drain_settings("{user: d, password_env: ACME_PW}", {"ACME_PW": "s3cret"})
    acme = settings.tenants["acme"]
    assert acme.heroku_drain is not None
    assert (acme.heroku_drain.codes, acme.heroku_drain.quiet_s) == (DEFAULT_CODES, 600.0)
    assert acme.heroku_drain_password == "s3cret"
    assert (
        _drain_settings("{user: d, password_env: ACME_PW}").tenants["acme"].heroku_drain_password
        is None
    )


@pytest.mark.parametrize(
    ("drain", "field", "problem"),
    [
        ("{user: d, password_env: P, codes: [H12, X1]}", "tenants.acme.heroku_drain.codes", "X1"),
        ("{user: d, password_env: P, quiet_s: 0}", "tenants.acme.heroku_drain", "quiet_s"),
        ("{user: d, password_env: P, password: hunter2}", "", "password"),
        ("{user: d}", "", "password_env"),
    ],
)
def test_a_wrong_drain_is_a_config_error_naming_the_field(
    drain: str, field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _drain_settings(drain)
    assert field in str(raised.value)
    assert problem in str(raised.value)
