-- Ownership handshakes under way (a Slack nonce, a DNS TXT poll, an email magic link,
-- a PagerDuty OAuth PKCE authorization), so that a fresh dyno (an empty data
-- directory, the same Postgres) still completes them until they expire. A row is
-- inserted when the handshake opens and deleted when it closes (completed, failed,
-- burnt, expired). key is the SHA-256 of the secret that comes back, never the secret;
-- the PKCE verifier is sealed under the OAuth state, which is not stored
-- (actors/sinks/pagerduty/verify.py says why).

CREATE TABLE pending_handshakes (
    key         text        PRIMARY KEY CHECK (key ~ '^[0-9a-f]{64}$'),
    tenant_id   text        NOT NULL,
    sink_id     text        NOT NULL,
    sink_type   text        NOT NULL,
    opened_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    handshake   jsonb       NOT NULL
);

ALTER TABLE pending_handshakes ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_handshakes FORCE ROW LEVEL SECURITY;
CREATE POLICY pending_handshakes_tenant ON pending_handshakes
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
