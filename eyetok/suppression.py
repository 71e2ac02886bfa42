"""The suppression window's rule, pure: how many tenants make a cluster, and its id.

The suppression actor (actors/suppression.py) holds and counts; ``eyetok replay
--explain`` uses the same rule to say what would be suppressed.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from eyetok.config import SuppressionOptions


def threshold(active_tenants: int, options: SuppressionOptions) -> int:
    """How many distinct tenants make a cluster: the floor, or the share of the active
    tenants, whichever is more. Never fewer than two: one tenant is never a cluster."""
    return max(2, options.min_tenants, math.ceil(options.min_share * active_tenants))


def cluster_id_of(key: str, fired_at: datetime) -> str:
    return "clu_" + hashlib.sha256(f"{key}|{fired_at.isoformat()}".encode()).hexdigest()[:16]


def describe(key: str) -> tuple[str, str, str]:
    """A cluster key's parts: error_kind, asn, registry."""
    error_kind, asn, registry = [*key.split("|"), "", "", ""][:3]
    return error_kind, asn, registry
