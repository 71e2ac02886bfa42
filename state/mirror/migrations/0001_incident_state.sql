-- The Postgres mirror of EyeTok's incident state (write-behind from the mirror actor).
-- A fresh process with an empty DuckDB history rehydrates from these two tables.

CREATE TABLE incident_state (
    incident_id      text        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    dedup_key        text        NOT NULL,
    title            text        NOT NULL,
    severity         text        NOT NULL,
    sev_channel      text,
    status           text        NOT NULL
                     CONSTRAINT incident_state_status_check
                     CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    last_seen_at     timestamptz NOT NULL,
    event_count      integer     NOT NULL,
    slack_channel    text,
    slack_ts         text,
    slack_sink_id    text,
    rule             text        NOT NULL,
    updated_at       timestamptz NOT NULL,
    snapshot         jsonb       NOT NULL
);

CREATE INDEX incident_state_tenant_status ON incident_state (tenant_id, status);

CREATE TABLE outbox_pending (
    delivery_id  text        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    incident_id  text        NOT NULL,
    sink_id      text        NOT NULL,
    sink_type    text        NOT NULL,
    target       text        NOT NULL,
    action       text        NOT NULL,
    planned_at   timestamptz NOT NULL,
    deliver      jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_pending_incident ON outbox_pending (incident_id);
