-- Junction control plane: base schema.
-- Every tenant table carries org_id; every query on tenant data filters on it.

CREATE TABLE IF NOT EXISTS control_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS organisations (
    id         uuid PRIMARY KEY,
    slug       text NOT NULL UNIQUE,
    name       text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- org_id is NULL only for global admins.
CREATE TABLE IF NOT EXISTS users (
    id            uuid PRIMARY KEY,
    org_id        uuid REFERENCES organisations(id) ON DELETE CASCADE,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('global_admin', 'org_admin', 'org_viewer')),
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'global_admin') = (org_id IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));
CREATE INDEX IF NOT EXISTS users_org_idx ON users (org_id);

-- Connectors and APIs: the current row plus one immutable row per version.
-- ``content`` holds the user-facing fields; ``name`` is copied out for uniqueness.
CREATE TABLE IF NOT EXISTS connectors (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    content    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE IF NOT EXISTS connector_versions (
    connector_id uuid NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL,
    version      integer NOT NULL,
    content      jsonb NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector_id, version)
);

CREATE TABLE IF NOT EXISTS apis (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name         text NOT NULL,
    connector_id uuid NOT NULL REFERENCES connectors(id),
    version      integer NOT NULL,
    content      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX IF NOT EXISTS apis_connector_idx ON apis (connector_id);

CREATE TABLE IF NOT EXISTS api_versions (
    api_id     uuid NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    org_id     uuid NOT NULL,
    version    integer NOT NULL,
    content    jsonb NOT NULL,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_id, version)
);

-- Caller credentials (API keys as hashes); managed by a later issue.
CREATE TABLE IF NOT EXISTS credentials (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL,
    key_prefix  text,
    secret_hash text,
    sealed      bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

-- Append-only: no foreign keys (an ON DELETE action would be an UPDATE/DELETE).
CREATE TABLE IF NOT EXISTS audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id      uuid,
    actor_email   text,
    org_id        uuid,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    before        jsonb,
    after         jsonb,
    request_id    text
);
CREATE INDEX IF NOT EXISTS audit_org_idx ON audit_log (org_id, id);
CREATE INDEX IF NOT EXISTS audit_resource_idx ON audit_log (resource_type, resource_id);

CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Config changes waiting to be relayed to the compacted config topic.
CREATE TABLE IF NOT EXISTS outbox (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    resource_id  text NOT NULL,
    org_slug     text NOT NULL,
    version      integer NOT NULL,
    op           text NOT NULL CHECK (op IN ('upsert', 'delete')),
    document     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- Filled by the request-log aggregation (a later issue).
CREATE TABLE IF NOT EXISTS request_logs (
    id             bigserial PRIMARY KEY,
    org_id         uuid NOT NULL,
    api_id         uuid,
    correlation_id text NOT NULL,
    method         text,
    path           text,
    status         integer,
    latency_ms     integer,
    error_code     text,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS request_logs_org_idx ON request_logs (org_id, at);
