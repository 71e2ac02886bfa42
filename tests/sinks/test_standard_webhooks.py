"""The pure Standard Webhooks module: signing, verifying, secrets, rotation windows."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta

import pytest

from eyetok.errors import EyeTokError
from eyetok.standard_webhooks import (
    ROTATION_OVERLAP,
    WebhookVerificationError,
    active_secrets,
    decode_secret,
    new_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The published Standard Webhooks test vector (the reference libraries' own tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_750_000_000
BODY = b'{"type":"incident.opened","timestamp":"2025-06-15T15:06:40Z","data":{}}'


def test_sign_matches_the_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def test_the_published_vector_verifies() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIG,
    }
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS + 10)


def test_signature_header_has_one_signature_per_secret_in_order() -> None:
    new, old = new_secret(), new_secret()
    header = signature_header([new, old], "dlv_1", NOW, BODY)
    assert header.split(" ") == [sign(new, "dlv_1", NOW, BODY), sign(old, "dlv_1", NOW, BODY)]
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "dlv_1", NOW, BODY)


@pytest.mark.parametrize("secret_index", [0, 1])
def test_either_secret_of_a_rotation_verifies(secret_index: int) -> None:
    secrets = [new_secret(), new_secret()]
    headers = webhook_headers(secrets, "dlv_1", NOW, BODY)
    verify(secrets[secret_index], headers, BODY, now=NOW)


def test_header_names_are_case_insensitive() -> None:
    secret = new_secret()
    headers = {k.upper(): v for k, v in webhook_headers([secret], "dlv_1", NOW, BODY).items()}
    verify(secret, headers, BODY, now=NOW)


def test_a_tampered_body_does_not_verify() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "dlv_1", NOW, BODY)
    with pytest.raises(WebhookVerificationError) as caught:
        verify(secret, headers, BODY.replace(b"opened", b"resolved"), now=NOW)
    assert caught.value.reason == "no-valid-signature"
    assert isinstance(caught.value, EyeTokError)


def test_a_changed_id_or_timestamp_does_not_verify() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "dlv_1", NOW, BODY)
    for changed in ({"webhook-id": "dlv_2"}, {"webhook-timestamp": str(NOW - 1)}):
        with pytest.raises(WebhookVerificationError, match="no-valid-signature"):
            verify(secret, headers | changed, BODY, now=NOW)


def test_another_secret_does_not_verify() -> None:
    headers = webhook_headers([new_secret()], "dlv_1", NOW, BODY)
    with pytest.raises(WebhookVerificationError, match="no-valid-signature"):
        verify(new_secret(), headers, BODY, now=NOW)


def test_stale_and_future_timestamps_are_refused() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "dlv_1", NOW, BODY)
    verify(secret, headers, BODY, now=NOW + 300)  # the edge of the tolerance is inside
    verify(secret, headers, BODY, now=NOW - 300)
    with pytest.raises(WebhookVerificationError) as stale:
        verify(secret, headers, BODY, now=NOW + 301)
    assert stale.value.reason == "stale-timestamp"
    with pytest.raises(WebhookVerificationError) as future:
        verify(secret, headers, BODY, now=NOW - 301)
    assert future.value.reason == "future-timestamp"
    verify(secret, headers, BODY, now=NOW + 3000, tolerance_s=3600)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "dlv_1", NOW, BODY)
    del headers[missing]
    with pytest.raises(WebhookVerificationError) as caught:
        verify(secret, headers, BODY, now=NOW)
    assert caught.value.reason == "missing-header"
    assert missing in str(caught.value)


def test_a_non_numeric_timestamp_is_refused() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "dlv_1", NOW, BODY) | {"webhook-timestamp": "1e9"}
    with pytest.raises(WebhookVerificationError, match="bad-timestamp"):
        verify(secret, headers, BODY, now=NOW)


def test_other_schemes_and_junk_entries_are_skipped() -> None:
    secret = new_secret()
    good = sign(secret, "dlv_1", NOW, BODY)
    header = f"v1a,bm90LWVkMjU1MTk= v1,!!notbase64!! v2,{good[3:]}  {good}"
    headers = {"webhook-id": "dlv_1", "webhook-timestamp": str(NOW), "webhook-signature": header}
    verify(secret, headers, BODY, now=NOW)
    only_junk = headers | {"webhook-signature": f"v1a,{good[3:]} v2,{good[3:]}"}
    with pytest.raises(WebhookVerificationError, match="no-valid-signature"):
        verify(secret, only_junk, BODY, now=NOW)


def test_an_id_with_a_full_stop_cannot_be_signed() -> None:
    # "a.b" + "." + ts would be ambiguous with "a" + "." + "b.ts": the spec forbids it.
    with pytest.raises(ValueError, match="msg_id"):
        sign(new_secret(), "dlv.1", NOW, BODY)


def test_new_secrets_are_fresh_whsec_32_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(decode_secret(first)) == 32
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),  # under 24 bytes
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # over 64 bytes
    ],
)
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        sign(bad, "dlv_1", NOW, BODY)


def test_active_secrets_overlap_for_thirty_days_after_the_rotation() -> None:
    new, old = "whsec_new", "whsec_old"  # active_secrets only selects; it never decodes
    rotated = date(2025, 6, 1)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    assert active_secrets(new, None, None, start) == [new]
    assert active_secrets(new, old, rotated, start) == [new, old]
    assert active_secrets(new, old, rotated, start + timedelta(days=29, hours=23)) == [new, old]
    assert active_secrets(new, old, rotated, start + ROTATION_OVERLAP) == [new]
    assert active_secrets(new, old, rotated, start + timedelta(days=90)) == [new]
    # Before the rotation date both sign too: the receiver may hold either.
    assert active_secrets(new, old, rotated, start - timedelta(days=1)) == [new, old]
    # A datetime works as well as a date; a naive one is UTC.
    naive_noon = datetime(2025, 6, 1, 12)  # noqa: DTZ001  (naive on purpose)
    assert active_secrets(new, old, naive_noon, start + ROTATION_OVERLAP) == [new, old]
    with pytest.raises(ValueError, match="rotation"):
        active_secrets(new, old, None, start)
