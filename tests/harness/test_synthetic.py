"""The synthetic health endpoint the drill breaks, seen by the synthetic check's probe."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from eyetok.clock import SystemClock
from harness.front_door import FrontDoor, HookCredentials
from harness.synthetic import DRILL_ASN, Health, HealthEndpoint, SyntheticCheck


async def test_the_endpoint_answers_ok_503_or_nothing(nursery: trio.Nursery) -> None:
    endpoint = HealthEndpoint()
    await nursery.start(endpoint.serve)
    front = FrontDoor("http://127.0.0.1:9", "unused")
    check = SyntheticCheck(
        name="drill-health",
        url=endpoint.url("drill-health"),
        tenant="drill",
        credentials=HookCredentials(token="t"),
        front=front,
        clock=SystemClock(),
        timeout_s=0.3,
    )
    async with httpx.AsyncClient() as client:
        assert await check.probe(client) is None
        endpoint.set("drill-health", Health.UNAVAILABLE)
        assert await check.probe(client) == "http_503"
        endpoint.set("drill-health", Health.TIMEOUT)
        assert await check.probe(client) == "timeout"
        endpoint.set("drill-health", Health.OK)
        assert await check.probe(client) is None
        missing = await client.get(f"http://127.0.0.1:{endpoint.port}/elsewhere")
        assert missing.status_code == 404
    await front.aclose()
    assert endpoint.requests == 5
    assert check.cluster_key("http_503") == f"http_503|{DRILL_ASN}|drill"
    verdict = check.verdict("down", "http_503")
    assert (verdict["server"], verdict["error_kind"]) == (
        "drill-health.synthetic",
        "http_503",
    )
    assert "error_kind" not in check.verdict("ok", None)
