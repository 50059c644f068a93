-- This installation's identity (docs/topics.md): one row, its id made once (control/installation.py) and
-- kept for good. Control names it on every record it publishes to the config topic, so that two
-- installations pointed at one topic prefix are told apart, and the second refused.
CREATE TABLE IF NOT EXISTS installation (
    id         uuid PRIMARY KEY,
    only_row   boolean NOT NULL DEFAULT true UNIQUE CHECK (only_row),
    created_at timestamptz NOT NULL DEFAULT now()
);
