"""``dst-edge``: routing explained at 2026-03-08 01:59 and 03:00 ET and at both 01:30 ET of
2026-11-01: SEV2 (a Sunday) judged in America/New_York with the right offset.
"""

from __future__ import annotations

from datetime import datetime

from harness.rig import Rig
from harness.steps import Observed, Steps
from harness.synthetic import SyntheticCheck

DST_INSTANTS = (
    ("spring-forward-0159", "2026-03-08T01:59:00-05:00", "the last EST minute before 02:00"),
    ("spring-forward-0300", "2026-03-08T03:00:00-04:00", "the first EDT hour after the gap"),
    ("fall-back-0130-edt", "2026-11-01T01:30:00-04:00", "the first 01:30, still EDT"),
    ("fall-back-0130-est", "2026-11-01T01:30:00-05:00", "the second 01:30, EST"),
)


ET = "America/New_York"


async def dst_edge(rig: Rig, steps: Steps) -> None:
    probe = SyntheticCheck(
        name=f"{rig.tenant}-dst",
        url="",
        tenant=rig.tenant,
        credentials=rig.hook_credentials(rig.tenant),
        front=rig.front,
        clock=rig.clock,
    )
    for name, local, what in DST_INSTANTS:
        at = datetime.fromisoformat(local)

        async def observe(at: datetime = at, local: str = local) -> Observed:
            body = probe.verdict("down", "http_503") | {"observed_at": at.isoformat()}
            [seen] = await rig.front.explain(rig.tenant, "probe", body, at)
            ok = (
                seen["sev_channel"] == "SEV2"
                and seen["business_hours"] is False
                and seen["zone"] == ET
                and datetime.fromisoformat(seen["local_time"]).utcoffset() == at.utcoffset()
                and seen["local_time"] == local
                and seen["rule"] == "synthetic-check-failure"
            )
            return Observed(
                ok=ok,
                observation=f"{seen['severity']} by {seen['rule']} -> {seen['sev_channel']} "
                f"(business hours: {seen['business_hours']}), judged at {seen['local_time']} "
                f"{seen['zone']}; destinations {', '.join(seen['destinations']) or 'none'}",
            )

        await steps.check(
            name,
            f"a synthetic-check failure at {local} ({what}; a Sunday) routes high -> SEV2, "
            f"judged at {local} {ET}",
            observe,
        )
