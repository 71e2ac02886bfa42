-- Who may do what (eyetok/access.py, actors/people.py): role bindings made through the
-- API, persons' API tokens (SHA-256 only), hat switches and their ends, and the rule
-- changes under the two-person review are journalled as configuration entries of the
-- operator tenant (tenant_config_log, kinds role_binding, person_token, hat, rule_change),
-- so they are mirrored and restored on a fresh dyno with the rest. This view reads them
-- as the on-call engineer asks: what happened, to whom, by whom. security_invoker keeps
-- the table's row-level security in force for whoever queries the view.

CREATE INDEX tenant_config_log_access ON tenant_config_log (kind, recorded_at)
    WHERE kind IN ('role_binding', 'person_token', 'hat', 'rule_change');

CREATE VIEW access_log WITH (security_invoker = true) AS
    SELECT recorded_at,
           kind,
           recorded_by,
           value_json::jsonb AS what
    FROM tenant_config_log
    WHERE kind IN ('role_binding', 'person_token', 'hat', 'rule_change');
