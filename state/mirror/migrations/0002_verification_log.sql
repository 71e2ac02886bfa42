-- The Postgres mirror of the sink ownership verification log (write-behind from the
-- mirror actor). Append-only, like the DuckDB verification_log it mirrors: a fresh
-- process with an empty DuckDB history takes every sink's latest row back from here,
-- so a dyno restart does not send every sink through its handshake again.
--
-- No CHECK on status: a row refused here would make an older row the sink's latest
-- after a restart (a failed or rotated sink could come back live).

CREATE TABLE verification_log (
    sink_id         text        NOT NULL,
    sink_type       text        NOT NULL,
    tenant_id       text        NOT NULL,
    status          text        NOT NULL,
    verified_by     text        NOT NULL,
    approved_by     text        NOT NULL,
    handshake_at    timestamptz NOT NULL,
    expires_at      timestamptz,
    nonce_hash      text        NOT NULL,
    audit_log_link  text        NOT NULL,
    detail          text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    verification    jsonb       NOT NULL,
    PRIMARY KEY (sink_id, handshake_at, status)
);

CREATE INDEX verification_log_sink_latest ON verification_log (sink_id, handshake_at DESC);
