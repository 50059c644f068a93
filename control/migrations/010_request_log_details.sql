-- The script's own traceback and log lines for calls that failed in a connector script.
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '[]'::jsonb;
