-- Mutes: a tenant silenced from an incident's thread (`mute 1h`), so that a fresh dyno
-- (an empty data directory, the same Postgres) keeps an active mute. One row per tenant:
-- its latest mute; `until` is when it ends, or ended (`unmute`, or it ran out: then
-- `ended_by` says who or "expired"). A row whose `until` has passed mutes nothing.

CREATE TABLE mutes (
    tenant_id    text        PRIMARY KEY,
    muted_by     text        NOT NULL,
    muted_at     timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    incident_id  text,
    ended_by     text,
    changed_at   timestamptz NOT NULL
);

ALTER TABLE mutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mutes FORCE ROW LEVEL SECURITY;
CREATE POLICY mutes_tenant ON mutes
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
