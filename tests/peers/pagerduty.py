"""Re-exported: the peer lives in ``harness/peers/pagerduty.py``
(the drill harness ships it)."""

from __future__ import annotations

import sys

from harness.peers.pagerduty import (
    EVENT_ACTIONS,
    SEVERITIES,
    FakePagerDuty,
    PdAlert,
    PdCall,
    PdEvent,
    Scripted,
    main,
    validate_event,
)

__all__ = [
    "EVENT_ACTIONS",
    "FakePagerDuty",
    "PdAlert",
    "PdCall",
    "PdEvent",
    "SEVERITIES",
    "Scripted",
    "main",
    "validate_event",
]

if __name__ == "__main__":
    sys.exit(main())
