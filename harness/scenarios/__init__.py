"""The drill scenarios (issue 7): each breaks something on purpose through the front door
and watches the daemon hold, one named step at a time. One module per scenario; what
they share (synthetic checks, breaking and healing an endpoint, watching deliveries
arrive) is ``watch.py``.

- ``single-tenant-outage``: the drill tenant's alert reaches its four drill sinks within
  90 s, the suppression window stays silent, the incident resolves on recovery;
- ``registry-wide-outage``: thirty synthetic tenants fail on one cluster key: one operator
  notice, their pages withheld, a suppression-log row; the drill tenant, failing alone
  on another key, is delivered;
- ``budget-exhaustion``: thirty alerts against the drill tier's ten: ten delivered, the
  rest held, one ``#alerts-cap`` line; at the top of the hour one digest and the reset
  (these two wait for the real hour unless ``--no-wait`` marks them skipped);
- ``sink-failure``: the drill webhook down: retried, then ``dead``, the operator told,
  the other three delivered on time;
- ``dst-edge``: routing explained at 2026-03-08 01:59 and 03:00 ET and at both 01:30 ET
  of 2026-11-01: SEV2 (a Sunday) judged in America/New_York with the right offset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from harness.rig import Rig
from harness.scenarios.budget_exhaustion import budget_exhaustion
from harness.scenarios.dst_edge import dst_edge
from harness.scenarios.registry_wide_outage import registry_wide_outage
from harness.scenarios.single_tenant_outage import single_tenant_outage
from harness.scenarios.sink_failure import sink_failure
from harness.steps import Steps

Scenario = Callable[[Rig, Steps], Awaitable[None]]

# ``all`` runs them in this order: budget-exhaustion last, as it leaves the drill tenant
# capped for the rest of its hour (a later scenario's pages would be held).
SCENARIOS: dict[str, Scenario] = {
    "single-tenant-outage": single_tenant_outage,
    "registry-wide-outage": registry_wide_outage,
    "sink-failure": sink_failure,
    "dst-edge": dst_edge,
    "budget-exhaustion": budget_exhaustion,
}
NAMES = (*SCENARIOS, "all")
