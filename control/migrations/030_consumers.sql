-- Consumers: an organisation's callers, and their credentials.
-- ``consumers`` has the shape of connectors and APIs (a current row plus one immutable
-- row per version); ``content`` holds name, enabled and a summary of the credentials
-- (ids, prefixes, usernames, never a hash), so versions and diffs show what changed.
CREATE TABLE IF NOT EXISTS consumers (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    content    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX IF NOT EXISTS consumers_org_created_id ON consumers (org_id, created_at, id);

CREATE TABLE IF NOT EXISTS consumer_versions (
    consumer_id uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    org_id      uuid NOT NULL,
    version     integer NOT NULL,
    content     jsonb NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_id, version)
);

-- API keys: only the hex SHA-256 of the key is kept (a 256-bit random key needs no salt).
-- last_used_at is filled by the request path, when it chooses to.
CREATE TABLE IF NOT EXISTS consumer_keys (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    consumer_id  uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consumer_keys_consumer_idx ON consumer_keys (org_id, consumer_id, created_at, id);

-- One username and bcrypt password per consumer; usernames are unique in an organisation.
CREATE TABLE IF NOT EXISTS consumer_basic (
    consumer_id   uuid PRIMARY KEY REFERENCES consumers(id) ON DELETE CASCADE,
    org_id        uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    username      text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, username)
);

-- OAuth clients for the client-credentials grant: the secret as hex SHA-256 (256 random bits).
CREATE TABLE IF NOT EXISTS consumer_oauth_clients (
    client_id   text PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    consumer_id uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    scopes      jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consumer_oauth_clients_consumer_idx ON consumer_oauth_clients (org_id, consumer_id, created_at);

-- Per organisation: a default rate limit for its APIs, and overrides of the settings' quotas.
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS rate_limit jsonb;
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS quotas jsonb NOT NULL DEFAULT '{}'::jsonb;
