-- The digest reader: every operator digest (a cluster notice, a budget cap summary, a
-- daily review) and its read receipt, so that a fresh dyno (an empty data directory,
-- the same Postgres) neither forgets a digest nobody acknowledged nor escalates one
-- twice. what is the digest's acknowledge value (digest:<delivery id>, cluster:<id>).

CREATE TABLE digest_receipts (
    what             text        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    title            text        NOT NULL,
    posted_at        timestamptz NOT NULL,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    escalated_at     timestamptz,
    receipt          jsonb       NOT NULL
);

ALTER TABLE digest_receipts ENABLE ROW LEVEL SECURITY;
ALTER TABLE digest_receipts FORCE ROW LEVEL SECURITY;
CREATE POLICY digest_receipts_tenant ON digest_receipts
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
