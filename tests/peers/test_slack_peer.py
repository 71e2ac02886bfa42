"""The Slack fake, driven by the real slack_sdk WebClient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from harness.peers.slack import FakeSlack
from harness.peers.slack_records import Scripted, SlackPost

BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*boom* in prod"}}
]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def client_for(fake: FakeSlack, token: str | None = None) -> WebClient:
    return WebClient(
        token=fake.token if token is None else token,
        base_url=fake.base_url,
        retry_handlers=[],
        timeout=10,
    )


def fake_request(fake: FakeSlack, path: str, body: Any = None) -> Any:
    url = fake.base_url.removesuffix("api/") + "_fake/" + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_post_message_ok_and_recorded(fake: FakeSlack) -> None:
    client = client_for(fake)
    response = client.chat_postMessage(
        channel="#alerts", text="boom in prod", blocks=BLOCKS, unfurl_links=False
    )
    assert response["ok"] is True
    ts = response["ts"]
    secs, _, micros = ts.partition(".")
    assert secs.isdigit()
    assert len(micros) == 6
    assert response["channel"].startswith("C")
    assert response["message"]["text"] == "boom in prod"
    assert response["message"]["blocks"] == BLOCKS

    [post] = fake.wait_for_posts(1)
    assert isinstance(post, SlackPost)
    assert post.channel == "alerts"
    assert post.text == "boom in prod"
    assert post.blocks == BLOCKS
    assert post.thread_ts is None
    assert post.ts == ts
    assert post.raw["unfurl_links"] is False

    [call] = fake.calls
    assert call.method == "chat.postMessage"
    assert call.status == 200
    assert call.error is None
    assert call.headers["authorization"] == "Bearer xoxb-test"
    assert call.headers["content-type"].startswith("application/json")


def test_reply_in_thread_and_increasing_ts(fake: FakeSlack) -> None:
    client = client_for(fake)
    parent = client.chat_postMessage(channel="alerts", text="parent")
    reply = client.chat_postMessage(channel=parent["channel"], text="reply", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert float(reply["ts"]) > float(parent["ts"])
    # a name and the id answered for it are the same channel
    assert reply["channel"] == parent["channel"]

    first, second = fake.wait_for_posts(2)
    assert first.channel == "alerts"
    assert second.channel == parent["channel"]
    assert second.thread_ts == parent["ts"]
    assert second.received_monotonic >= first.received_monotonic


def test_form_encoded_post_with_json_string_blocks(fake: FakeSlack) -> None:
    client = client_for(fake)
    response = client.api_call(
        "chat.postMessage",
        data={"channel": "#ops", "blocks": json.dumps(BLOCKS), "thread_ts": "1.000001"},
    )
    assert response["ok"] is True
    [post] = fake.posts
    assert post.channel == "ops"
    assert post.text is None
    assert post.blocks == BLOCKS
    assert post.thread_ts == "1.000001"
    assert fake.calls[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_wrong_or_missing_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        client_for(fake, token="xoxb-wrong").chat_postMessage(channel="a", text="x")
    assert wrong.value.response.status_code == 200
    assert wrong.value.response["error"] == "invalid_auth"

    with pytest.raises(SlackApiError) as missing:
        client_for(fake, token="").chat_postMessage(channel="a", text="x")
    assert missing.value.response["error"] == "not_authed"

    assert fake.posts == []
    assert [c.error for c in fake.calls] == ["invalid_auth", "not_authed"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_no_text_and_unknown_method(fake: FakeSlack) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as no_text:
        client.chat_postMessage(channel="alerts")
    assert no_text.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.frobnicate", json={"channel": "alerts"})
    assert unknown.value.response["error"] == "unknown_method"
    assert fake.posts == []


def test_auth_test_conversations_list_and_update(fake: FakeSlack) -> None:
    client = client_for(fake)
    auth = client.auth_test()
    assert auth["user_id"] == "U0EYETOK"
    assert auth["team"] == "fake"

    names = {c["name"] for c in client.conversations_list()["channels"]}
    assert {"general", "alerts"} <= names

    posted = client.chat_postMessage(channel="alerts", text="v1")
    updated = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="v2")
    assert updated["ok"] is True
    assert updated["ts"] == posted["ts"]
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel="alerts", ts="1.000000", text="v2")
    assert missing.value.response["error"] == "message_not_found"


def test_scripted_server_error_then_success(fake: FakeSlack) -> None:
    client = client_for(fake)
    fake.fail_next(Scripted.server_error())
    with pytest.raises(SlackApiError) as failed:
        client.chat_postMessage(channel="alerts", text="x")
    assert failed.value.response.status_code == 500
    assert fake.posts == []

    assert client.chat_postMessage(channel="alerts", text="x")["ok"] is True
    assert len(fake.posts) == 1
    assert [c.status for c in fake.calls] == [500, 200]


def test_scripted_rate_limit_sends_retry_after(fake: FakeSlack) -> None:
    fake.fail_next(Scripted.rate_limited(3))
    with pytest.raises(SlackApiError) as limited:
        client_for(fake).chat_postMessage(channel="alerts", text="x")
    response = limited.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response["error"] == "ratelimited"


def test_scripted_slack_error_and_passthrough(fake: FakeSlack) -> None:
    client = client_for(fake)
    fake.fail_next(
        Scripted.slack_error("channel_not_found"),
        Scripted.passthrough(),
        Scripted.server_error(503),
    )
    with pytest.raises(SlackApiError) as not_found:
        client.chat_postMessage(channel="nope", text="x")
    assert not_found.value.response.status_code == 200
    assert not_found.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="alerts", text="x")["ok"] is True
    with pytest.raises(SlackApiError) as unavailable:
        client.chat_postMessage(channel="alerts", text="x")
    assert unavailable.value.response.status_code == 503
    assert fake.pending_script == []


def test_wait_for_posts_timeout_raises(fake: FakeSlack) -> None:
    client_for(fake).chat_postMessage(channel="alerts", text="only one")
    with pytest.raises(AssertionError, match="only one"):
        fake.wait_for_posts(2, timeout=0.05)


def test_delay_holds_back_the_answer(fake: FakeSlack) -> None:
    fake.delay = 0.5
    request = urllib.request.Request(
        fake.base_url + "chat.postMessage",
        data=json.dumps({"channel": "alerts", "text": "slow"}).encode(),
        headers={
            "Authorization": f"Bearer {fake.token}",
            "Content-Type": "application/json;charset=utf-8",
        },
    )
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(request, timeout=0.1)
    # the message was "posted" on arrival; only the answer is held back
    assert [p.text for p in fake.posts] == ["slow"]


def test_fake_control_endpoints(fake: FakeSlack) -> None:
    client = client_for(fake)
    client.chat_postMessage(channel="#alerts", text="one")
    posts = fake_request(fake, "posts")
    assert [(p["channel"], p["text"], p["thread_ts"]) for p in posts] == [("alerts", "one", None)]
    assert posts[0]["ts"] == fake.posts[0].ts
    assert isinstance(posts[0]["received_wall"], float)

    script = {"responses": [{"status": 429, "retry_after": 1}, {"error": "is_archived"}]}
    assert fake_request(fake, "script", script)["pending"] == 2
    assert fake.pending_script == [
        Scripted.rate_limited(1),
        Scripted.slack_error("is_archived"),
    ]
    assert fake_request(fake, "delay", {"seconds": 0.25})["delay"] == 0.25
    assert fake.delay == 0.25
    fake_request(fake, "reset", {})
    assert fake.posts == []
    assert fake.pending_script == []
    assert fake.delay == 0
    assert fake_request(fake, "posts") == []


def test_cli_subprocess() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.peers.slack", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        base_url = line["base_url"]
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/api/")
        client = WebClient(token="xoxb-test", base_url=base_url, retry_handlers=[])
        assert client.chat_postMessage(channel="#alerts", text="from afar")["ok"]
        url = base_url.removesuffix("api/") + "_fake/posts"
        with urllib.request.urlopen(url, timeout=10) as response:
            posts = json.loads(response.read())
        assert [p["text"] for p in posts] == ["from afar"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def _metadata(delivery_id: str) -> dict[str, Any]:
    return {"event_type": "eyetok_delivery", "event_payload": {"delivery_id": delivery_id}}


def test_history_and_replies_carry_metadata_only_when_asked(fake: FakeSlack) -> None:
    client = client_for(fake)
    top = client.chat_postMessage(channel="#alerts", text="top", metadata=_metadata("dlv_1"))
    client.chat_postMessage(channel="#random", text="elsewhere", metadata=_metadata("dlv_x"))
    reply = client.chat_postMessage(
        channel="#alerts", text="reply", thread_ts=top["ts"], metadata=_metadata("dlv_2")
    )
    channel = top["channel"]
    history = client.conversations_history(channel=channel, include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["top"]  # replies are in the thread
    assert history["messages"][0]["metadata"] == _metadata("dlv_1")
    bare = client.conversations_history(channel=channel)
    assert "metadata" not in bare["messages"][0]
    later = client.conversations_history(channel=channel, oldest=top["ts"])
    assert later["messages"] == []  # oldest is exclusive
    thread = client.conversations_replies(channel=channel, ts=top["ts"], include_all_metadata=True)
    assert [m["ts"] for m in thread["messages"]] == [top["ts"], reply["ts"]]
    assert thread["messages"][1]["metadata"] == _metadata("dlv_2")
    with pytest.raises(SlackApiError) as missing:
        client.conversations_replies(channel=channel, ts="1.000001")
    assert missing.value.response["error"] == "thread_not_found"


def test_slow_posts_land_at_once_and_answer_late(fake: FakeSlack) -> None:
    fake.slow_posts(0.5, for_s=60)
    client = WebClient(
        token=fake.token,
        base_url=fake.base_url,
        retry_handlers=[],
        timeout=0.2,  # type: ignore[arg-type]
    )
    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel="#alerts", text="slow", metadata=_metadata("dlv_s"))
    [post] = fake.posts  # it landed although the client gave up
    found = client.conversations_history(channel="#alerts", include_all_metadata=True)
    assert found["messages"][0]["ts"] == post.ts  # other methods are not slowed
    fake_request(fake, "slow_posts", {"seconds": 0, "for_s": None})
    assert client.chat_postMessage(channel="#alerts", text="fast")["ok"] is True


def test_get_permalink_links_a_message_it_received(fake: FakeSlack) -> None:
    client = client_for(fake)
    posted = client.chat_postMessage(channel="#ops", text="boom")
    answer = client.chat_getPermalink(channel="#ops", message_ts=posted["ts"])
    assert answer["channel"] == posted["channel"]
    assert answer["permalink"].endswith(posted["ts"].replace(".", ""))
    assert f"/archives/{posted['channel']}/p" in answer["permalink"]
    with pytest.raises(SlackApiError) as unknown:
        client.chat_getPermalink(channel="#ops", message_ts="1.000001")
    assert unknown.value.response["error"] == "message_not_found"
