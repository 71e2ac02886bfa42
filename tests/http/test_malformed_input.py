"""No input makes a 500 (issue 11, item 3 and the adversarial run of item 6), against the
daemon running in-process: every finding of the run, each a test, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok import slack_events, standard_webhooks
from eyetok.sources import sentry
from harness.peers.slack import FakeSlack
from tests.conftest import SECRET, daemon_settings, start_daemon
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET

CONFIG = """
sinks:
  slack: {type: slack}
tenants:
  acme: {tier: team}
"""
ACME_HOOK = "acme-hook-token-7c2d"
ACME_SECRET = standard_webhooks.new_secret()
ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
HOOKS = ("/hooks/probe/acme", "/hooks/generic/acme", "/hooks/alertmanager/acme")
DEEP = b"[" * 100_000
DEEP_UNDER_64K = b"[" * 60_000
BAD_UTF8_IN_STRING = b'{"title": "disk \xff\xfe full", "dedup_key": "k"}'


async def start_acme(nursery: trio.Nursery, data_dir: Path, slack: FakeSlack) -> Daemon:
    settings = daemon_settings(
        data_dir,
        slack,
        config=CONFIG,
        EYETOK_HOOK_TOKEN_ACME=ACME_HOOK,
        EYETOK_HOOK_SECRET_ACME=ACME_SECRET,
    )
    return await start_daemon(nursery, settings)


@pytest.fixture
async def acme(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Daemon]:
    instance = await start_acme(nursery, tmp_path / "data", fake_slack)
    yield instance
    instance.request_stop()


@pytest.fixture
async def http(acme: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{acme.bound_port}", timeout=10.0
    ) as client:
        yield client


def signed(body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    """Standard Webhooks headers of ``body`` under acme's secret, now."""
    return {
        "content-type": "application/json",
        **standard_webhooks.webhook_headers([ACME_SECRET], msg_id, int(time.time()), body),
    }


def slack_signed(body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": slack_events.sign(body, stamp, SLACK_SIGNING_SECRET),
    }


def sentry_signed(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "sentry-hook-signature": sentry.sign(body, SECRET),
        "sentry-hook-resource": "event_alert",
    }


def refused(answer: httpx.Response, status: int, *words: str) -> str:
    """The answer is ``status`` with a JSON ``{"error": ...}`` naming every word."""
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:300]
    error = answer.json()["error"]
    assert isinstance(error, str)
    for word in words:
        assert word in error, (word, error)
    return error


# --- the unauthenticated findings --------------------------------------------------------


async def test_a_timestamp_past_pythons_digit_limit_is_401_not_500(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post(
        "/hooks/generic/acme",
        content=b"{}",
        headers={
            "webhook-id": "x",
            "webhook-timestamp": "9" * 4301,
            "webhook-signature": "v1,AAAA",
        },
    )
    refused(answer, 401, "bad-timestamp", "4301 characters")
    latin1 = {**signed(b"{}"), "webhook-signature": b"v1,AA\xe9A="}
    answer = await http.post("/hooks/generic/acme", content=b"{}", headers=latin1)
    refused(answer, 401, "no v1 signature matches")


async def test_a_slack_timestamp_past_the_digit_limit_is_401(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/slack/events",
        content=b"{}",
        headers={"x-slack-request-timestamp": "9" * 4301, "x-slack-signature": "v0=00"},
    )
    refused(answer, 401, "not Unix seconds")
    non_ascii = await http.post(
        "/slack/events",
        content=b"{}",
        headers={
            "x-slack-request-timestamp": str(int(time.time())),
            "x-slack-signature": b"v0=\xe9\xe9",
        },
    )
    refused(non_ascii, 401, "does not match")


async def early_answer(
    port: int, method: str, path: str, headers: dict[str, str], first: bytes
) -> tuple[int, dict[str, object]]:
    """Send the head of a request and only ``first`` of its body over a raw socket, then
    read the answer: a server that reads the whole body before it answers never does."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head.encode() + b"\r\n" + first)
        received = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some()
            top, _, rest = received.partition(b"\r\n\r\n")
            lines = top.decode("latin-1").split("\r\n")
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length")
            )
            while len(rest) < length:
                rest += await stream.receive_some()
    return int(lines[0].split()[1]), json.loads(rest[:length])


@pytest.mark.parametrize(
    "path", ["/api/v1/tenants/acme/routes", "/api/v1/tenants/acme/sinks/acme.x"]
)
async def test_an_anonymous_oversized_api_body_is_refused_before_it_is_read(
    acme: Daemon, path: str
) -> None:
    assert acme.bound_port is not None
    declared = {"content-type": "application/json", "content-length": str(15 * 1024 * 1024)}
    status, body = await early_answer(acme.bound_port, "PUT", path, declared, b'{"routes": "x')
    assert status == 401, body
    assert "token" in str(body["error"])
    chunked = {"content-type": "application/json", "transfer-encoding": "chunked"}
    first = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    status, body = await early_answer(acme.bound_port, "PUT", path, chunked, first)
    assert status == 401, body


# --- authenticated bodies that used to 500 ----------------------------------------------


@pytest.mark.parametrize("path", HOOKS)
async def test_deep_nesting_on_every_hook_is_400(http: httpx.AsyncClient, path: str) -> None:
    by_token = await http.post(path, content=DEEP, headers={"authorization": f"Bearer {ACME_HOOK}"})
    refused(by_token, 400)
    by_signature = await http.post(path, content=DEEP, headers=signed(DEEP))
    refused(by_signature, 400)


async def test_deep_nesting_on_the_sentry_hook_is_400(http: httpx.AsyncClient) -> None:
    deep_object = b'{"data":' * 50_000
    refused(await http.post("/hooks/sentry", content=DEEP, headers=sentry_signed(DEEP)), 400)
    answer = await http.post(
        "/hooks/sentry", content=deep_object, headers=sentry_signed(deep_object)
    )
    refused(answer, 400, "nested too deeply")


@pytest.mark.parametrize("path", ["/hooks/probe/acme", "/hooks/generic/acme"])
async def test_invalid_utf8_inside_a_string_is_400_naming_the_byte(
    http: httpx.AsyncClient, path: str
) -> None:
    answer = await http.post(path, content=BAD_UTF8_IN_STRING, headers=signed(BAD_UTF8_IN_STRING))
    refused(answer, 400, "invalid UTF-8 at byte 16")


async def test_invalid_utf8_in_a_signed_sentry_body_is_400(http: httpx.AsyncClient) -> None:
    body = b'{"action": "triggered", "data": {"event": {"title": "\xc3\x28"}}}'
    answer = await http.post("/hooks/sentry", content=body, headers=sentry_signed(body))
    refused(answer, 400, "event_alert webhook", "invalid UTF-8")


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/api/v1/sinks/slack/verification", "verification request"),
        ("/api/v1/suppressions/cl_1/ack", "acknowledgement"),
        ("/api/v1/explain", "explain takes"),
        ("/api/v1/review/anomalies/anm_1/note", "a note is"),
        ("/api/v1/drills/receipts", "drill receipt"),
    ],
)
async def test_a_json_string_on_a_root_route_is_400_json(
    http: httpx.AsyncClient, path: str, what: str
) -> None:
    answer = await http.post(path, content=b'"just a string"', headers=ROOT)
    refused(answer, 400, what)
    deep = await http.post(path, content=DEEP_UNDER_64K, headers=ROOT)
    refused(deep, 400, what)


async def test_a_deep_object_on_signed_slack_events_is_400(http: httpx.AsyncClient) -> None:
    body = b'{"type": "event_callback", "event": ' * 20_000
    refused(await http.post("/slack/events", content=body, headers=slack_signed(body)), 400)
    bad_utf8 = b'{"type": "event_callback", "team_id": "T\xff"}'
    answer = await http.post("/slack/events", content=bad_utf8, headers=slack_signed(bad_utf8))
    refused(answer, 400, "Slack event", "invalid UTF-8")


async def test_the_hundred_thousand_brackets_on_the_tenant_api_are_4xx_json(
    http: httpx.AsyncClient,
) -> None:
    """The finding: ``[`` x 100,000 to ``PUT /routes`` was a 500 with a RecursionError."""
    path = "/api/v1/tenants/acme/routes"
    refused(await http.put(path, content=DEEP), 401, "token")
    refused(await http.put(path, content=DEEP, headers=ROOT), 413, "64 KiB")
    refused(await http.put(path, content=DEEP_UNDER_64K, headers=ROOT), 400, "nested too deeply")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'"junk"', "(body)"),
        (b"[1, 2]", "(body)"),
        (b"{}", "label"),
        (b'{"label": ""}', "label"),
        (b'{"label": "   "}', "label"),
        (b'{"label": 7}', "label"),
        (b'{"label": "ci", "scopes": ["all"]}', "scopes"),
    ],
)
async def test_a_token_needs_a_label(http: httpx.AsyncClient, body: bytes, field: str) -> None:
    answer = await http.post("/api/v1/tenants/acme/tokens", content=body, headers=ROOT)
    refused(answer, 400)
    assert answer.json()["field"] == field
    listed = await http.get("/api/v1/tenants/acme/tokens", headers=ROOT)
    assert listed.json()["tokens"] == []


async def test_a_labelled_token_is_issued(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/api/v1/tenants/acme/tokens", json={"label": "deploy bot"}, headers=ROOT
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["label"] == "deploy bot"


# --- every kind of malformed body, on hooks and API routes ------------------------------

SYNTAX = {"empty", "whitespace", "bom", "nan", "infinity", "truncated", "invalid utf-8"}
"""The kinds a hook names as such; on the others it may first name a field of its shape."""
MALFORMED = {
    "empty": (b"", "empty"),
    "whitespace": (b"  \n ", "empty"),
    "bom": (b'\xef\xbb\xbf{"routes": {}}', "byte-order mark"),
    "nan": (b'{"routes": NaN}', "malformed JSON"),
    "infinity": (b'{"routes": Infinity}', "malformed JSON"),
    "huge integer": (b'{"routes": ' + b"9" * 5000 + b"}", "out of range"),
    "huge float": (b'{"routes": 1e999}', "out of range"),
    "truncated": (b'{"routes": {', "ends early"),
    "invalid utf-8": (b'{"routes": "\xff"}', "invalid UTF-8"),
    "deep": (b'{"routes": ' * 40 + b"1" + b"}" * 40, "nests deeper"),
    "very deep": (b"[" * 60_000, "nested too deeply"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_a_malformed_api_body_is_400_naming_the_problem(
    http: httpx.AsyncClient, kind: str
) -> None:
    body, words = MALFORMED[kind]
    answer = await http.put("/api/v1/tenants/acme/routes", content=body, headers=ROOT)
    refused(answer, 400, words)
    assert answer.json()["field"] == "(body)"


@pytest.mark.parametrize("kind", sorted(MALFORMED))
@pytest.mark.parametrize("path", HOOKS)
async def test_a_malformed_hook_body_is_400_naming_the_problem(
    http: httpx.AsyncClient, path: str, kind: str
) -> None:
    body, words = MALFORMED[kind]
    answer = await http.post(path, content=body, headers=signed(body))
    refused(answer, 400, *([words] if kind in SYNTAX else []))


async def test_wrong_types_name_the_field(http: httpx.AsyncClient) -> None:
    body = b'{"title": 5, "dedup_key": "k"}'
    answer = await http.post("/hooks/generic/acme", content=body, headers=signed(body))
    refused(answer, 400, "expected str for $.title, got int")
    routes = await http.put(
        "/api/v1/tenants/acme/routes", json={"routes": {"SEV1": "all"}}, headers=ROOT
    )
    refused(routes, 400)
    assert routes.json()["field"].startswith("routes")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/hooks/generic/acme", "POST"),
        ("/hooks/sentry", "POST"),
        ("/api/v1/tenants/acme/routes", "PUT"),
        ("/slack/events", "POST"),
        ("/api/v1/explain", "POST"),
    ],
)
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/html", "application/json; charset=latin-1"],
)
async def test_a_body_that_says_it_is_not_json_is_415(
    http: httpx.AsyncClient, path: str, method: str, content_type: str
) -> None:
    body = b'{"title": "t", "dedup_key": "k"}'
    headers = {**signed(body), **ROOT, "content-type": content_type}
    if path == "/hooks/generic/acme":
        headers.pop("authorization")
    answer = await http.request(method, path, content=body, headers=headers)
    refused(answer, 415)


@pytest.mark.parametrize(
    ("path", "method", "limit"),
    [
        ("/api/v1/tenants/acme/routes", "PUT", "64 KiB"),
        ("/api/v1/tenants/acme/tokens", "POST", "64 KiB"),
        ("/api/v1/suppressions/cl_1/ack", "POST", "64 KiB"),
        ("/api/v1/explain", "POST", "1024 KiB"),
    ],
)
async def test_an_authenticated_body_past_its_cap_is_413_declared_or_chunked(
    acme: Daemon, path: str, method: str, limit: str
) -> None:
    assert acme.bound_port is not None
    size = 64 * 1024 if limit == "64 KiB" else 1024 * 1024
    declared = {**ROOT, "content-type": "application/json", "content-length": str(size + 1)}
    status, body = await early_answer(acme.bound_port, method, path, declared, b'{"by": "')
    assert status == 413, body
    assert limit in str(body["error"])
    chunked = {**ROOT, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, body = await early_answer(acme.bound_port, method, path, chunked, chunked_over(size))
    assert status == 413, body
    assert limit in str(body["error"])


def chunked_over(size: int) -> bytes:
    """Chunks (HTTP/1.1 chunked transfer coding) of more than ``size`` bytes in all."""
    piece = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    return piece * (size // 0x4000 + 1)


async def test_a_chunked_hook_body_past_one_mebibyte_is_413(acme: Daemon) -> None:
    assert acme.bound_port is not None
    headers = {"authorization": f"Bearer {ACME_HOOK}", "transfer-encoding": "chunked"}
    over = chunked_over(1024 * 1024)
    status, body = await early_answer(acme.bound_port, "POST", "/hooks/generic/acme", headers, over)
    assert status == 413, body
    assert "1 MiB" in str(body["error"])


async def test_the_daemon_still_routes_after_all_that(http: httpx.AsyncClient) -> None:
    for body in (DEEP, BAD_UTF8_IN_STRING, b"\xef\xbb\xbf{}"):
        await http.post("/hooks/generic/acme", content=body, headers=signed(body))
    valid = json.dumps({"title": "checkout down", "dedup_key": "co", "severity": "high"}).encode()
    answer = await http.post("/hooks/generic/acme", content=valid, headers=signed(valid, "m2"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1
