-- Replay jobs (control/handlers/replays.py, run by control/replay_jobs.py): dead letters sent back
-- through the pipeline, their answers read from control's own results topic (<prefix>.results.replays).
-- One row per (job, dead letter) is what makes a job send each message at most once, also across a
-- control restart: a row leaves 'pending' only once, in a transaction, before it is sent.
CREATE TABLE IF NOT EXISTS replay_jobs (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    created_by       uuid,
    created_by_email text,
    selection        jsonb NOT NULL,          -- {"filter": {...}} or {"ids": [...]}, as asked
    config           text NOT NULL,           -- current | original
    rate_per_second  integer NOT NULL,
    force            boolean NOT NULL DEFAULT false,
    status           text NOT NULL,           -- running | done
    total            integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS replay_jobs_org_created ON replay_jobs (org_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS replay_jobs_running ON replay_jobs (created_at) WHERE status = 'running';

-- state: pending -> sending (claimed, about to be sent) -> sent -> succeeded | failed | unanswered;
-- or pending -> skipped_already_done | not_replayable. ``attempt`` is the replay's own attempt number,
-- unique per correlation id, so its answer (a Reply, or a dead letter of that attempt) is its alone.
-- No foreign key to dead_letters: a row outlives the letter's retention.
CREATE TABLE IF NOT EXISTS replay_items (
    job_id             uuid NOT NULL REFERENCES replay_jobs(id) ON DELETE CASCADE,
    dead_letter_id     uuid NOT NULL,
    seq                integer NOT NULL,
    org_id             uuid NOT NULL,
    org_slug           text NOT NULL,
    correlation_id     text NOT NULL,
    letter_attempt     integer NOT NULL,
    letter_stage       text NOT NULL,
    letter_code        text NOT NULL,
    state              text NOT NULL DEFAULT 'pending',
    attempt            integer,
    config             text,                  -- the configuration it was replayed with: current | original
    topic              text,
    status             integer,
    code               text,
    message            text,
    new_dead_letter_id uuid,
    sent_at            timestamptz,
    deadline_at        timestamptz,
    answered_at        timestamptz,
    PRIMARY KEY (job_id, dead_letter_id)
);
CREATE INDEX IF NOT EXISTS replay_items_job_seq ON replay_items (job_id, seq);
CREATE INDEX IF NOT EXISTS replay_items_correlation ON replay_items (org_id, correlation_id);
CREATE INDEX IF NOT EXISTS replay_items_in_flight ON replay_items (deadline_at) WHERE state IN ('sending', 'sent');
CREATE INDEX IF NOT EXISTS replay_items_unlinked ON replay_items (sent_at) WHERE new_dead_letter_id IS NULL AND attempt IS NOT NULL;
