-- The versioned secret store's mirror (eyetok rotate): every sink credential's versions,
-- sealed with EYETOK_SECRETS_KEY before they leave the process (Postgres never holds a
-- credential in clear), and the rotations that made them. A fresh dyno with an empty
-- DuckDB history takes them back from here, so a rotation survives the ephemeral disk.
-- Row-level security as for every mirror table (0003): rows of the sink's tenant only.

CREATE TABLE sink_credential_versions (
    sink_id     text        NOT NULL,
    version     integer     NOT NULL,
    sink_type   text        NOT NULL,
    tenant_id   text        NOT NULL,
    state       text        NOT NULL,  -- pending | current | previous | discarded | rolled_back
    sealed      bytea,                 -- NULL once discarded or rolled back
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (sink_id, version)
);

CREATE TABLE sink_rotations (
    rotation_id   text        PRIMARY KEY,
    sink_id       text        NOT NULL,
    sink_type     text        NOT NULL,
    tenant_id     text        NOT NULL,
    from_version  integer     NOT NULL,
    to_version    integer     NOT NULL,
    state         text        NOT NULL,  -- open | done | rolled_back
    started_at    timestamptz NOT NULL,
    started_by    text        NOT NULL,
    ended_at      timestamptz,
    ended_by      text,
    prior_json    text        NOT NULL,
    detail        text        NOT NULL
);

ALTER TABLE sink_credential_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sink_credential_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY sink_credential_versions_tenant ON sink_credential_versions
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));

ALTER TABLE sink_rotations ENABLE ROW LEVEL SECURITY;
ALTER TABLE sink_rotations FORCE ROW LEVEL SECURITY;
CREATE POLICY sink_rotations_tenant ON sink_rotations
    USING (tenant_id = current_setting('eyetok.tenant', true))
    WITH CHECK (tenant_id = current_setting('eyetok.tenant', true));
