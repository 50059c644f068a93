-- Metrics computed from the topics by the processors' observe stage (docs/observability.md).
-- One row per (resolution, organisation, API, window); rows are only ever added to, never rewritten:
-- every flush of every instance adds its counts, so late data and several instances merge exactly.

-- Adds two {key: count} objects key by key (error codes, histogram buckets).
CREATE OR REPLACE FUNCTION junction_jsonb_add(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb) FROM (
        SELECT k, sum(v::bigint) AS n FROM (
            SELECT key AS k, value AS v FROM jsonb_each_text(coalesce(a, '{}'::jsonb))
            UNION ALL
            SELECT key, value FROM jsonb_each_text(coalesce(b, '{}'::jsonb))
        ) s GROUP BY k
    ) t
$$;

CREATE TABLE IF NOT EXISTS metric_windows (
    step_s          integer NOT NULL CHECK (step_s IN (10, 60, 3600)),
    bucket          timestamptz NOT NULL,   -- start of the window
    org_id          uuid NOT NULL,
    api_id          text NOT NULL DEFAULT '',  -- '': calls no API matched
    calls           bigint NOT NULL DEFAULT 0,
    status_2xx      bigint NOT NULL DEFAULT 0,
    status_3xx      bigint NOT NULL DEFAULT 0,
    status_4xx      bigint NOT NULL DEFAULT 0,
    status_5xx      bigint NOT NULL DEFAULT 0,
    status_other    bigint NOT NULL DEFAULT 0,
    errors          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- {error code: calls}, for status >= 400
    latency_count   bigint NOT NULL DEFAULT 0,
    latency_sum_ms  double precision NOT NULL DEFAULT 0,
    latency_hist    jsonb NOT NULL DEFAULT '{}'::jsonb,  -- {bucket: calls}, core/latency.py
    upstream_count  bigint NOT NULL DEFAULT 0,
    upstream_sum_ms double precision NOT NULL DEFAULT 0,
    upstream_hist   jsonb NOT NULL DEFAULT '{}'::jsonb,
    bytes_in        bigint NOT NULL DEFAULT 0,
    bytes_out       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (step_s, org_id, api_id, bucket)
);
-- Retention deletes and the cross-organisation view go by time.
CREATE INDEX IF NOT EXISTS metric_windows_time_idx ON metric_windows (step_s, bucket);
