"""Re-exported: the peer lives in ``harness/peers/webhook_receiver.py``
(the drill harness ships it)."""

from __future__ import annotations

from harness.peers.webhook_receiver import (
    Answer,
    ReceivedWebhook,
    WebhookReceiver,
    check_signature,
)

__all__ = ["Answer", "ReceivedWebhook", "WebhookReceiver", "check_signature"]
