-- The playbooks actor's ledger (actors/playbooks.py): every proposal, approval,
-- rejection, run, triage finding and escalation recommendation or acknowledgement, as
-- recorded, so that a fresh dyno (an empty data directory, the same Postgres) knows
-- which proposals wait for approval, which runs were started (never run again) and which
-- escalations a human acknowledged. seq keeps the recording order.

CREATE TABLE playbook_events (
    seq         bigserial   UNIQUE,
    event_id    text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    incident_id text        NOT NULL,
    event       text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    body        jsonb       NOT NULL
);

ALTER TABLE playbook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE playbook_events FORCE ROW LEVEL SECURITY;
CREATE POLICY playbook_events_tenant ON playbook_events
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
