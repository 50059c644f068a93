-- Dead letters, indexed from the dead-letter topic by control's indexer (control/dead_letters.py), so
-- operators list and read them through the API, and they outlive a broker that loses its data.
-- ``original`` is the redacted original (core/redaction.py): never a caller credential.
-- ``digest`` (SHA-256 of the record as written) makes indexing idempotent: a record read again after a
-- restart is the same row, while a broker that starts over at offset 0 brings new rows, not collisions.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                uuid PRIMARY KEY,
    digest            bytea NOT NULL UNIQUE,
    org_id            uuid REFERENCES organisations(id) ON DELETE CASCADE,  -- NULL: no organisation of that slug
    org_slug          text NOT NULL,
    api_id            text NOT NULL DEFAULT '',
    connector_id      text NOT NULL DEFAULT '',
    connector_version bigint NOT NULL DEFAULT 0,
    config_version    bigint NOT NULL DEFAULT 0,
    stage             text NOT NULL,
    error_code        text NOT NULL,
    error_message     text NOT NULL,
    details           jsonb NOT NULL DEFAULT '[]',
    attempt           integer NOT NULL DEFAULT 1,
    correlation_id    text NOT NULL,
    original_topic    text NOT NULL,
    original          bytea NOT NULL,
    inbound_partition integer NOT NULL DEFAULT -1,
    inbound_offset    bigint NOT NULL DEFAULT -1,
    topic_partition   integer NOT NULL,
    topic_offset      bigint NOT NULL,
    failed_at         timestamptz NOT NULL,
    indexed_at        timestamptz NOT NULL DEFAULT now()
);
-- Lists are newest first with (failed_at, id) as the cursor; each filter has an index led by the org.
CREATE INDEX IF NOT EXISTS dead_letters_org_failed ON dead_letters (org_id, failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_org_api_failed ON dead_letters (org_id, api_id, failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_org_stage ON dead_letters (org_id, stage, failed_at DESC);
CREATE INDEX IF NOT EXISTS dead_letters_org_code ON dead_letters (org_id, error_code, failed_at DESC);
CREATE INDEX IF NOT EXISTS dead_letters_org_correlation ON dead_letters (org_id, correlation_id);
-- Retention deletes by age across organisations.
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (failed_at);
