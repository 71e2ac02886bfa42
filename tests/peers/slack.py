"""Re-exported: the peer lives in ``harness/peers/slack.py``
(the drill harness ships it)."""

from __future__ import annotations

import sys

from harness.peers.slack import FakeSlack, main
from harness.peers.slack_records import RawCall, Scripted, SlackPost

__all__ = ["FakeSlack", "RawCall", "Scripted", "SlackPost", "main"]

if __name__ == "__main__":
    sys.exit(main())
