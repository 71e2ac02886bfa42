-- Who decided, as the system they used names them, in columns of their own: a Slack
-- click or modal ("slack:U0DANA") or PagerDuty ("pagerduty:PLH1HKV"), and a human
-- resolve's author and note. acknowledged_by/acknowledged_at (0001) keep the name and
-- the time. Generated from the snapshot the mirror writer already upserts, so every
-- writer (the one-row and the set-based upsert) fills them without naming them.

ALTER TABLE incident_state
    ADD COLUMN acknowledged_by_id text GENERATED ALWAYS AS (snapshot->>'acknowledged_by_id') STORED,
    ADD COLUMN resolved_by        text GENERATED ALWAYS AS (snapshot->>'resolved_by') STORED,
    ADD COLUMN resolved_by_id     text GENERATED ALWAYS AS (snapshot->>'resolved_by_id') STORED,
    ADD COLUMN resolution_note    text GENERATED ALWAYS AS (snapshot->>'resolution_note') STORED;
