-- The request log becomes one row per call, written by the observe stage from the topics
-- (docs/observability.md), no longer by processors on the request path. The row is also where
-- the stage joins what each topic says of a call (the *_ms and reply_/dlq_ columns) until it is done.
ALTER TABLE request_logs RENAME TO request_logs_v1;
ALTER INDEX IF EXISTS request_logs_org_idx RENAME TO request_logs_v1_org_idx;

CREATE TABLE request_logs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org                text NOT NULL,          -- slug, as on the wire
    correlation_id     text NOT NULL,
    org_id             uuid,
    api_id             text,
    connector_id       text,
    connector_version  bigint,
    config_version     bigint,
    method             text,
    path               text,
    status             integer,
    error_code         text,
    stage              text,
    latency_ms         double precision,       -- end to end: arrival on the requests topic to the reply
    upstream_ms        double precision,
    bytes_in           bigint,
    bytes_out          bigint,
    details            jsonb,                  -- a failed script's traceback and log lines, from its dead letter
    at                 timestamptz NOT NULL DEFAULT now(),  -- when the call arrived (set when done)
    done               boolean NOT NULL DEFAULT false,
    seen_at            timestamptz NOT NULL DEFAULT now(),
    -- join state
    received_ms        bigint,
    expects_reply      boolean,
    deadline_ms        bigint,
    handoff_ms         bigint,
    reply_status       integer,
    reply_code         text,
    reply_stage        text,
    replied_ms         bigint,
    reply_upstream_ms  double precision,
    dlq_code           text,
    dlq_stage          text,
    failed_ms          bigint,
    UNIQUE (org, correlation_id)
);
CREATE INDEX IF NOT EXISTS request_logs_list_idx ON request_logs (org_id, at DESC, id DESC) WHERE done;
CREATE INDEX IF NOT EXISTS request_logs_at_idx ON request_logs (at);
CREATE INDEX IF NOT EXISTS request_logs_pending_idx ON request_logs (seen_at) WHERE NOT done;

INSERT INTO request_logs (org, correlation_id, org_id, api_id, method, path, status, error_code, latency_ms, details, at, done)
SELECT DISTINCT ON (correlation_id) '', correlation_id, org_id, api_id::text, method, path, status, error_code, latency_ms,
       details, at, true
FROM request_logs_v1 ORDER BY correlation_id, id DESC;
DROP TABLE request_logs_v1;
