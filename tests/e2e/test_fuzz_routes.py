"""Generated bodies and headers at every route of ``eyetok run`` (issue 11, item 3).

Hypothesis draws a route (every rule of the quart app, and every hook of the raw front),
a body (JSON values, then broken: a byte-order mark, invalid UTF-8, deep nesting,
NaN, huge numbers, truncation, raw bytes), a content type and credentials, most often
*valid* ones over the exact bytes sent (a Standard Webhooks or Sentry signature, Slack's
request signature, the root token), so the request passes the door and the decoder is
reached. Every answer must be below 500, and every refusal a JSON ``{"error": ...}``.
Afterwards the daemon still routes a valid alert, and its history holds nothing of the
refused requests (the audit log aside, which records attempts on purpose).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eyetok import slack_events, standard_webhooks
from eyetok.clock import SystemClock
from eyetok.http.app import create_app
from eyetok.http.hooks import BATCH_SOURCES
from eyetok.sources import pagerduty, sentry
from tests.conftest import SECRET
from tests.e2e.daemon import DaemonProcess
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET

CONFIG = """
tenants:
  acme: {tier: team}
"""
ACME_HOOK = "acme-hook-token-fuzz"
ACME_SECRET = standard_webhooks.new_secret()
ACME_PD_WEBHOOK_SECRET = "acme-pagerduty-webhook-secret-fuzz"
PATH_VALUES = {
    "tenant": "acme",
    "sink_id": "acme.pager",
    "cluster_id": "cl_1",
    "anomaly_id": "anm_1",
    "token_id": "tok_1",
    "token": "tok_1",
    "incident_id": "inc_1",
}
BROWSER_PAGES = ("/verify/email/", "/oauth/")
"""Pages a person opens from an email or a redirect: they answer text/plain on purpose."""
STATE_TABLES = (
    "signals",
    "deliveries",
    "tenant_tokens",
    "tenant_config_log",
    "drill_receipts",
    "anomaly_notes",
    "suppression_log",
)


def every_route() -> list[tuple[str, str]]:
    """(method, path) for every rule of the quart app and every hook of the front. The
    app is built only to read its route table (its collaborators are never called)."""
    stand_in: Any = object()
    app = create_app(
        readiness=dict,
        verifier=stand_in,
        reviewer=stand_in,
        root_token="x",
        slack_signing_secret="x",
        clock=SystemClock(),
        drills=stand_in,
        operations=stand_in,
        tenant_api=stand_in,
        tenants={"acme": stand_in},
    )
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", PATH_VALUES[name])
        routes.extend((m, path) for m in sorted(rule.methods or ()) if m not in {"HEAD", "OPTIONS"})
    hooks = ["/hooks/sentry", "/hooks/sentry/acme"] + [f"/hooks/{s}/acme" for s in BATCH_SOURCES]
    return sorted(routes) + [("POST", h) for h in hooks]


ROUTES = every_route()
WRITES = [(method, path) for method, path in ROUTES if method != "GET"]
ACCEPTED: list[int] = []
"""How many signals each generated request that was answered 202 handed over."""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "eyetok.yaml").write_text(CONFIG)
    env = {
        "EYETOK_CONFIG": str(root / "eyetok.yaml"),
        "SENTRY_CLIENT_SECRET": SECRET,
        "EYETOK_HOOK_TOKEN_ACME": ACME_HOOK,
        "EYETOK_HOOK_SECRET_ACME": ACME_SECRET,
        "PAGERDUTY_WEBHOOK_SECRET_ACME": ACME_PD_WEBHOOK_SECRET,
    }
    process = DaemonProcess(root / "data", env).start(timeout=60)  # a loaded box is slow
    yield process
    process.__exit__(None, None, None)  # killed if the test did not stop it


@pytest.fixture(scope="module")
def client(daemon: DaemonProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.url, timeout=10.0) as http:
        yield http


# --- what is thrown ------------------------------------------------------------------------

FIELDS = ["title", "dedup_key", "routes", "label", "by", "type", "tenant", "hook", "at", "body"]
FIELDS += ["server", "alerts", "action", "data", "event", "verdict", "note", "requested_by"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body = json.dumps(draw(json_values)).encode()
    match draw(st.sampled_from(["as is", "bom", "utf8", "deep", "nan", "huge", "cut", "raw"])):
        case "as is":
            return body
        case "bom":
            return b"\xef\xbb\xbf" + body
        case "utf8":
            at = draw(st.integers(0, len(body)))
            return (
                body[:at]
                + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
                + body[at:]
            )
        case "deep":
            depth = draw(st.sampled_from([40, 900, 5000, 60_000]))
            opener = draw(st.sampled_from([b"[", b'{"data":', b'{"routes":']))
            return opener * depth + body
        case "nan":
            return body.replace(b"null", draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"])))
        case "huge":
            return b'{"title": ' + b"9" * draw(st.integers(20, 5000)) + b', "dedup_key": "k"}'
        case "cut":
            return body[: draw(st.integers(0, max(0, len(body) - 1)))]
        case _:
            return draw(st.binary(max_size=300))


header_text = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    | st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
    max_size=60,
).map(lambda text: text.encode("latin-1"))
"""Header values as a client may send them: ASCII and Latin-1 (HTTP's obs-text)."""
query_values = st.sampled_from(["-1", "0", "9" * 5000, "24h", "0s", "1e9", "", "open"]) | st.text(
    max_size=20
)
QUERY_NAMES = ["limit", "since", "status", "tenant", "event", "state", "code", "error"]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
]


def credentials(path: str, body: bytes, msg_id: str) -> dict[str, str]:
    """Valid credentials for ``path`` over exactly ``body``."""
    now = int(time.time())
    if path.startswith("/hooks/sentry"):
        return {"sentry-hook-signature": sentry.sign(body, SECRET)}
    if path.startswith("/hooks/pagerduty/"):
        return {"x-pagerduty-signature": pagerduty.sign(body, ACME_PD_WEBHOOK_SECRET)}
    if path.startswith("/hooks/"):
        return standard_webhooks.webhook_headers([ACME_SECRET], msg_id, now, body)
    if path in ("/slack/events", "/slack/actions", "/slack/interactions"):
        return {
            "x-slack-request-timestamp": str(now),
            "x-slack-signature": slack_events.sign(body, now, SLACK_SIGNING_SECRET),
        }
    return {"authorization": f"Bearer {ROOT_TOKEN}"}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, Any], dict[str, str]]:
    method, path = draw(st.sampled_from(WRITES) | st.sampled_from(ROUTES))
    body = draw(bodies())
    headers: dict[str, Any] = {}
    auth = draw(st.sampled_from(["valid", "valid", "valid", "none", "junk"]))
    if auth == "valid":
        headers |= credentials(path, body, "msg_" + draw(st.uuids()).hex)
    elif auth == "junk":
        name = draw(
            st.sampled_from(
                [
                    "authorization",
                    "webhook-timestamp",
                    "webhook-signature",
                    "sentry-hook-signature",
                    "sentry-hook-resource",
                    "x-slack-request-timestamp",
                    "x-slack-signature",
                ]
            )
        )
        headers |= {**credentials(path, body, "msg_junk"), name: draw(header_text)}
        if name == "webhook-timestamp":
            headers["webhook-id"] = "x"
            headers[name] = draw(st.sampled_from([headers[name], b"9" * 4301, b"-1", b"1e9"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES[:3]) | st.sampled_from(CONTENT_TYPES))
    if content_type is not None:
        headers["content-type"] = content_type
    if draw(st.booleans()):
        headers["sentry-hook-resource"] = draw(
            st.sampled_from(["event_alert", "issue", "error", "metric_alert", "installation", ""])
        )
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=3))
    return method, path, body, headers, query


# --- the property ---------------------------------------------------------------------------


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(request=requests())
def test_no_generated_request_makes_a_500(
    client: httpx.Client, request: tuple[str, str, bytes, dict[str, Any], dict[str, str]]
) -> None:
    method, path, body, headers, query = request
    answer = client.request(method, path, content=body, headers=headers, params=query)
    event(f"answered {answer.status_code}")
    if answer.status_code == 202:
        ACCEPTED.append(answer.json().get("accepted", 1))
    assert answer.status_code < 500, (method, path, body[:200], headers, query, answer.text[:300])
    if answer.status_code >= 400 and not path.startswith(BROWSER_PAGES):
        assert answer.headers.get("content-type", "").startswith("application/json"), (
            method,
            path,
            answer.status_code,
            answer.text[:300],
        )
        assert isinstance(answer.json()["error"], str)


def test_every_route_is_thrown_at() -> None:
    methods = {method for method, _ in ROUTES}
    assert {"GET", "POST", "PUT", "DELETE"} <= methods
    assert ("PUT", "/api/v1/tenants/acme/routes") in ROUTES
    assert ("POST", "/hooks/alertmanager/acme") in ROUTES
    assert ("POST", "/hooks/pagerduty/acme") in ROUTES
    assert ("POST", "/slack/actions") in ROUTES
    assert len(ROUTES) >= 30


def test_keep_alive_after_an_answer_given_before_the_body_was_read(
    client: httpx.Client,
) -> None:
    """Such a request used to hang the next one on its connection (about one in four):
    the answer now says Connection: close, and the client opens a new one."""
    for _ in range(40):
        answer = client.request("GET", "/verify/email/nope", content=b"null" * 30, timeout=5.0)
        assert answer.status_code == 400
    kept = client.get("/healthz")
    assert kept.headers.get("connection") != "close"  # no body, nothing left unread


def test_afterwards_it_routes_and_recorded_nothing_refused(
    daemon: DaemonProcess, client: httpx.Client, tmp_path: Path
) -> None:
    """Runs after the property (same module, same daemon)."""
    valid = json.dumps({"title": "checkout down", "dedup_key": "co", "severity": "high"}).encode()
    headers = {
        "content-type": "application/json",
        **credentials("/hooks/generic/acme", valid, "msg_valid"),
    }
    answer = client.post("/hooks/generic/acme", content=valid, headers=headers)
    assert answer.status_code == 202, answer.text
    assert [line for line in daemon.raw if "Traceback" in line] == []
    code, _ = daemon.terminate()
    assert code == 0
    with duckdb.connect(str(daemon.data_dir / "history.duckdb"), read_only=True) as con:
        counts = {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in STATE_TABLES
        }
    assert counts["signals"] == 1 + sum(ACCEPTED), (counts, ACCEPTED)
    refused_only = {t: n for t, n in counts.items() if t not in {"signals", "deliveries"}}
    assert set(refused_only.values()) == {0}, counts
