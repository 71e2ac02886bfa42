-- Retention (issue 19): the daily prune removes incidents resolved before the horizon,
-- tenant by tenant (row-level security); this index finds them without a scan.
CREATE INDEX incident_state_resolved ON incident_state (tenant_id, resolved_at)
    WHERE status = 'resolved';
