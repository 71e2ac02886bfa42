"""The console's forms and queries under bad input, against ``eyetok run``: a clear 4xx
page every time (never a 500), nothing written without the session's CSRF token, and the
session cookie's attributes (``Secure`` behind an HTTPS proxy)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.daemon import DaemonProcess
from tests.verify import ROOT_TOKEN

FORMS = [
    "/console/login",
    "/console/logout",
    "/console/incidents/inc_nope/ack",
    "/console/anomalies/anm_nope/verdict",
    "/console/review/zero-anomalies",
    "/console/sinks/nope/verification",
    "/console/suppressions/cl_nope/ack",
]
BODIES: list[tuple[bytes, str]] = [
    (b"", "application/x-www-form-urlencoded"),
    (b"csrf=%ff%fe&verdict=benign&since=zz", "application/x-www-form-urlencoded"),
    (
        b"--x\r\nContent-Disposition: form-data; name=csrf\r\n\r\n",
        "multipart/form-data; boundary=x",
    ),
    (b'{"csrf": "x"}', "application/json"),
    (b"\xff\xfe\x00garbage", "text/plain"),
]
QUERIES = [
    "/console/incidents?severity=SEV9",
    "/console/incidents?status=closed&since=1e9",
    "/console/incidents?since=" + "9" * 500,
    "/console/incidents/rows?severity=%ff",
    "/console?since=0s",
    "/console/receipts/nope",
    "/console/incidents/%00",
]


def _signed_in(client: httpx.Client, *, https: bool = False) -> httpx.Response:
    """Sign in through the form (behind an HTTPS proxy: the cookies are ``Secure``, so
    the client, on plain HTTP, is handed the sign-in form's cookie by hand)."""
    headers = {"x-forwarded-proto": "https"} if https else {}
    page = client.get("/console/login", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    login_cookie = page.headers["set-cookie"]
    assert ("Secure" in login_cookie) is https
    if https:
        headers["cookie"] = login_cookie.split(";")[0]
    answer = client.post(
        "/console/login",
        data={"csrf": csrf[1], "name": "sam", "token": ROOT_TOKEN},
        headers=headers,
    )
    assert answer.status_code == 302, answer.text
    return answer


def test_bad_input_gets_a_clear_refusal_and_writes_nothing(tmp_path: Path) -> None:
    env = {"FLAG_CONSOLE_INCIDENTS": "on"}
    with DaemonProcess(tmp_path / "data", env) as daemon:
        anonymous = httpx.Client(base_url=daemon.url, timeout=15)
        with httpx.Client(base_url=daemon.url, timeout=15) as client:
            answer = _signed_in(client, https=True)
            cookie = answer.headers.get_list("set-cookie")[0]
            assert "HttpOnly" in cookie
            assert "Secure" in cookie
            assert "SameSite=Lax" in cookie
            assert answer.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            client.cookies.clear()
            answer = _signed_in(client)
            assert "Secure" not in answer.headers.get_list("set-cookie")[0]
            for path in FORMS:
                for body, content_type in BODIES:
                    for who in (client, anonymous):
                        sent = who.post(path, content=body, headers={"content-type": content_type})
                        assert 300 <= sent.status_code < 500, (path, body, sent.text)
            for path in QUERIES:
                got = client.get(path)
                assert 200 <= got.status_code < 500, (path, got.text)
                assert got.status_code != 200 or "/receipts/" not in path
            assert client.get("/console/incidents?since=1e9").status_code == 400
            # the form without its CSRF token changed nothing; with it, the refusal is clear
            session = client.get("/console").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', session)
            assert csrf is not None
            zero = client.post("/console/review/zero-anomalies", data={"since": "24h"})
            assert zero.status_code == 403
            audit = httpx.get(
                daemon.url + "/api/v1/audit?event=review_zero_anomalies",
                headers={"authorization": f"Bearer {ROOT_TOKEN}"},
                timeout=10,
            ).json()["audit"]
            assert audit == []
            odd = client.post(
                "/console/anomalies/anm_nope/verdict", data={"csrf": csrf[1], "verdict": "meh"}
            )
            assert odd.status_code == 400
            assert "benign or escalate" in odd.text
            unknown = client.post(
                "/console/anomalies/anm_nope/verdict", data={"csrf": csrf[1], "verdict": "benign"}
            )
            assert unknown.status_code == 404
        anonymous.close()
        assert daemon.terminate()[0] == 0
