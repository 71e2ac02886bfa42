"""The DuckDB history schema: append-only tables, views for the current state.

Append-only keeps DuckDB fast (no index maintenance, no updates) and makes the file a
journal: the current incident, notification and routing state are views over it.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS wal_applied (
        segment BIGINT, "offset" BIGINT, applied_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS signals (
        signal_id VARCHAR, tenant VARCHAR, source VARCHAR, resource VARCHAR, action VARCHAR,
        kind VARCHAR, dedup_key VARCHAR, title VARCHAR, level VARCHAR,
        received_at TIMESTAMPTZ, journalled_at TIMESTAMPTZ,
        severity VARCHAR, rule VARCHAR, sev_channel VARCHAR, business_hours BOOLEAN,
        incident_action VARCHAR, incident_id VARCHAR, cluster_key VARCHAR,
        signal_json VARCHAR, incident_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS incident_snapshots (
        incident_id VARCHAR, tenant VARCHAR, dedup_key VARCHAR, status VARCHAR,
        severity VARCHAR, sev_channel VARCHAR, rule VARCHAR, title VARCHAR,
        opened_at TIMESTAMPTZ, last_seen_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
        event_count INTEGER, recorded_at TIMESTAMPTZ, seq BIGINT, snapshot_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS signal_routed (signal_id VARCHAR, routed_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id VARCHAR, signal_id VARCHAR, tenant VARCHAR, incident_id VARCHAR,
        sink_id VARCHAR, sink_type VARCHAR, target VARCHAR, action VARCHAR,
        planned_at TIMESTAMPTZ, received_at TIMESTAMPTZ, deliver_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS delivery_outcomes (
        delivery_id VARCHAR, outcome VARCHAR, attempts INTEGER, latency_ms DOUBLE,
        finished_at TIMESTAMPTZ, detail VARCHAR, external_ref VARCHAR, thread_ref VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS verification_log (
        sink_id VARCHAR, sink_type VARCHAR, tenant VARCHAR, status VARCHAR,
        verified_by VARCHAR, approved_by VARCHAR, handshake_at TIMESTAMPTZ,
        expires_at TIMESTAMPTZ, nonce_hash VARCHAR, audit_log_link VARCHAR, detail VARCHAR,
        recorded_at TIMESTAMPTZ, verification_json VARCHAR)""",
    # Handshakes under way (opened) and done with (closed): the open ones are rebuilt by
    # the verification actor on every start. Only the SHA-256 of each secret is kept.
    """CREATE TABLE IF NOT EXISTS handshakes (
        key VARCHAR, event VARCHAR, sink_id VARCHAR, sink_type VARCHAR, tenant VARCHAR,
        opened_at TIMESTAMPTZ, expires_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ,
        reason VARCHAR, handshake_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        logged_at TIMESTAMPTZ, tenant VARCHAR, event VARCHAR, detail VARCHAR,
        incident_id VARCHAR, signal_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS drill_receipts (
        receipt_id VARCHAR, scenario VARCHAR, tenant VARCHAR, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, verdict VARCHAR, failed_steps VARCHAR,
        daemon_version VARCHAR, recorded_at TIMESTAMPTZ, receipt_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS suppression_log (
        cluster_id VARCHAR, event VARCHAR, logged_at TIMESTAMPTZ, cluster_key VARCHAR,
        error_kind VARCHAR, asn VARCHAR, registry VARCHAR, tenants VARCHAR,
        tenant_count INTEGER, active_tenants INTEGER, withheld INTEGER, by_whom VARCHAR)""",
    # One row per cluster: where it fired, the silenced tenants and withheld count as last
    # recorded (the clear carries the final set), when it cleared, who acknowledged it.
    """CREATE OR REPLACE VIEW suppressions AS
        SELECT f.cluster_id, f.cluster_key, f.error_kind, f.asn, f.registry,
               coalesce(c.tenants, f.tenants) AS tenants,
               coalesce(c.tenant_count, f.tenant_count) AS tenant_count,
               f.active_tenants, coalesce(c.withheld, f.withheld) AS withheld,
               f.logged_at AS fired_at, c.logged_at AS cleared_at,
               a.logged_at AS acked_at, a.by_whom AS acked_by
        FROM (SELECT DISTINCT ON (cluster_id) * FROM suppression_log
              WHERE event = 'fired' ORDER BY cluster_id, logged_at) f
        LEFT JOIN (SELECT DISTINCT ON (cluster_id) * FROM suppression_log
                   WHERE event = 'cleared' ORDER BY cluster_id, logged_at) c USING (cluster_id)
        LEFT JOIN (SELECT DISTINCT ON (cluster_id) * FROM suppression_log
                   WHERE event = 'acknowledged' ORDER BY cluster_id, logged_at) a
        USING (cluster_id)""",
    """CREATE TABLE IF NOT EXISTS anomalies (
        anomaly_id VARCHAR, kind VARCHAR, tenant VARCHAR, subject VARCHAR, detail VARCHAR,
        occurred_at TIMESTAMPTZ, flagged_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS anomaly_notes (
        anomaly_id VARCHAR, verdict VARCHAR, note VARCHAR, noted_by VARCHAR,
        noted_at TIMESTAMPTZ)""",
    """CREATE OR REPLACE VIEW anomaly_journal AS
        SELECT a.*, n.verdict, n.note, n.noted_by, n.noted_at
        FROM (SELECT DISTINCT ON (anomaly_id) * FROM anomalies) a
        LEFT JOIN (SELECT DISTINCT ON (anomaly_id) * FROM anomaly_notes
                   ORDER BY anomaly_id, noted_at DESC) n
        USING (anomaly_id)""",
    # The tenant API: tokens (hashes only; a row with revoked_at revokes) and every
    # change to a tenant's sinks and routes, latest per (tenant, kind, key) wins.
    """CREATE TABLE IF NOT EXISTS tenant_tokens (
        token_id VARCHAR, tenant VARCHAR, token_hash VARCHAR, issued_at TIMESTAMPTZ,
        issued_by VARCHAR, label VARCHAR, revoked_at TIMESTAMPTZ, revoked_by VARCHAR,
        token_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS tenant_config_log (
        tenant VARCHAR, kind VARCHAR, key VARCHAR, value_json VARCHAR,
        recorded_at TIMESTAMPTZ, recorded_by VARCHAR, entry_json VARCHAR)""",
    """CREATE OR REPLACE VIEW incidents AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY incident_id ORDER BY seq DESC) AS rn
            FROM incident_snapshots) WHERE rn = 1""",
    """CREATE OR REPLACE VIEW notifications AS
        SELECT d.delivery_id, d.signal_id, d.tenant, d.incident_id, d.sink_id, d.sink_type,
               d.target, d.action, d.planned_at, d.received_at,
               coalesce(o.outcome, 'pending') AS status, o.attempts, o.latency_ms,
               o.finished_at, o.detail, o.external_ref, o.thread_ref, d.deliver_json
        FROM (SELECT DISTINCT ON (delivery_id) * FROM deliveries) d
        LEFT JOIN (SELECT DISTINCT ON (delivery_id) * FROM delivery_outcomes) o
        USING (delivery_id)""",
)
