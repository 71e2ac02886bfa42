"""EyeTok's exceptions.

The tree::

    EyeTokError
    +-- ConfigError              configuration is unknown or invalid; names the field path
    +-- IngestError              an inbound payload cannot be accepted (maps to an HTTP answer)
    |   +-- UnknownTenantError       404
    |   +-- SignatureError           401
    |   +-- PayloadTooLargeError     413
    |   +-- MalformedPayloadError    400, names what is wrong
    |   +-- UnsupportedMediaTypeError 415, the body says it is not JSON
    |   +-- OverloadedError          503 with Retry-After
    +-- DeliveryError            a send did not happen
    |   +-- RetryableDeliveryError   may succeed later (carries retry_after seconds)
    |   +-- PermanentDeliveryError   will never succeed as is
    |   +-- SinkUnverifiedError      the sink's ownership is not verified
    +-- PayloadRejectedError     the payload-shape guard refused a payload
    +-- StateError               the history or mirror store failed
        +-- CrossTenantError         a tenant's scope was handed another tenant's row

Only the supervisor catches ``Exception``; nothing catches ``trio.Cancelled``.
"""

from __future__ import annotations


class EyeTokError(Exception):
    """Base of every error EyeTok raises on purpose."""


class ConfigError(EyeTokError, ValueError):
    """Configuration is unknown or invalid. ``field`` is the dotted path of the culprit.

    A ``ValueError`` too, so that msgspec, converting a file, reports one raised in a
    struct's ``__post_init__`` with the full path of the struct."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"config {field}: {problem}")
        self.field = field
        self.problem = problem


class IngestError(EyeTokError):
    """An inbound payload cannot be accepted. ``status`` is the HTTP answer."""

    status = 400


class UnknownTenantError(IngestError):
    status = 404


class SignatureError(IngestError):
    status = 401


class PayloadTooLargeError(IngestError):
    status = 413


class MalformedPayloadError(IngestError):
    status = 400


class UnsupportedMediaTypeError(IngestError):
    status = 415


class OverloadedError(IngestError):
    status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryError(EyeTokError):
    """A send did not happen."""


class RetryableDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass


class SinkUnverifiedError(DeliveryError):
    pass


class PayloadRejectedError(EyeTokError):
    """The payload-shape guard refused a payload; ``rule`` names the guard rule."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class StateError(EyeTokError):
    """The history store or the Postgres mirror failed."""


class CrossTenantError(StateError):
    """A store call scoped to one tenant was handed a row (or asked for a key) of another
    tenant: refused before anything is written."""
