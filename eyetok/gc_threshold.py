"""How often the daemon's cyclic garbage collector runs.

CPython runs a young-generation collection every 700 allocations of container objects
(more than deallocations), and every tenth of those a middle one. A batch hook makes
several containers per alert (the decoded alert, its Signal, tags, journal and history
rows, the answer): about 490 young, 44 middle and 4 full collections through 20,000
batched Alertmanager alerts, 0.34 s of the daemon's CPU, finding almost nothing (EyeTok's
objects are freed by reference counting; 2,700 objects collected in all). At 7,000 the
same run took 33, 3 and 0 collections and 0.15 s, and the same peak RSS
(``bench/batched.py --source alertmanager``, issue 20). Only the young threshold is
raised: garbage in cycles is still collected, a little later."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000


def space_out_collections() -> None:
    """Raise the young generation's threshold to :data:`YOUNG_THRESHOLD` (never lower it:
    an operator who set a higher one through ``PYTHONSTARTUP`` or a wrapper keeps it)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
