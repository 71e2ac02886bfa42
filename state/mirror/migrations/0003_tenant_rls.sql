-- Tenant-scoped configuration, and the third of the three layers that keep one tenant
-- out of another's rows: row-level security on every mirror table.
--
-- Each row is visible and writable only while the transaction's setting eyetok.tenant
-- names its tenant: `SELECT set_config('eyetok.tenant', 'acme', true)`. A query that
-- did not set it sees nothing and can write nothing (current_setting(..., true) is NULL,
-- or '' once a local setting has ended). FORCE applies the policies to the tables'
-- owner as well, which is the role the mirror writer connects as on a managed Postgres
-- (Heroku's DATABASE_URL user owns the tables and is not a superuser). A superuser, or
-- a role with BYPASSRLS, is not bound by them: do not point DATABASE_URL at one.
-- The mirror writer sets eyetok.tenant before each tenant's rows; rehydration reads
-- tenant by tenant.

CREATE TABLE tenant_config_log (
    tenant_id    text        NOT NULL,
    kind         text        NOT NULL,  -- sink | routes
    key          text        NOT NULL,  -- the sink id, or 'routes'
    value_json   text        NOT NULL,  -- '' when removed
    recorded_at  timestamptz NOT NULL,
    recorded_by  text        NOT NULL,
    entry        jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, kind, key, recorded_at)
);

-- Only SHA-256 hashes of tenant API tokens; a 'revoked' row revokes its token.
CREATE TABLE tenant_tokens (
    token_id    text        NOT NULL,
    row_kind    text        NOT NULL CHECK (row_kind IN ('issued', 'revoked')),
    tenant_id   text        NOT NULL,
    token_hash  text        NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    issued_at   timestamptz NOT NULL,
    issued_by   text        NOT NULL,
    label       text        NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text        NOT NULL,
    token       jsonb       NOT NULL,
    PRIMARY KEY (token_id, row_kind)
);

ALTER TABLE incident_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_state FORCE ROW LEVEL SECURITY;
CREATE POLICY incident_state_tenant ON incident_state
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));

ALTER TABLE outbox_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_pending_tenant ON outbox_pending
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));

ALTER TABLE verification_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE verification_log FORCE ROW LEVEL SECURITY;
CREATE POLICY verification_log_tenant ON verification_log
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));

ALTER TABLE tenant_config_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_config_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_config_log_tenant ON tenant_config_log
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));

ALTER TABLE tenant_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_tokens_tenant ON tenant_tokens
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
