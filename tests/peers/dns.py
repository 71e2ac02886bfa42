"""Re-exported: the peer lives in ``harness/peers/dns.py``
(the drill harness ships it)."""

from __future__ import annotations

from harness.peers.dns import (
    FakeDns,
)

__all__ = ["FakeDns"]
