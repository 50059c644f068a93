-- Alerts (docs/alerts.md): versioned rules, the evaluator's state per rule, the history of alerts, and
-- the notifications each alert owes, kept until delivered so a control instance that stops mid-way
-- leaves them to the next evaluator rather than losing them.

-- Rules are versioned like APIs and connectors (control/store/resources.py). org_id NULL: a global rule.
CREATE TABLE IF NOT EXISTS alert_rules (
    id         uuid PRIMARY KEY,
    org_id     uuid REFERENCES organisations(id) ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    content    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One name per organisation, and one among the global rules (NULLs would all be distinct in a UNIQUE).
CREATE UNIQUE INDEX IF NOT EXISTS alert_rules_name_key
    ON alert_rules (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX IF NOT EXISTS alert_rules_org_order ON alert_rules (org_id, created_at, id);

CREATE TABLE IF NOT EXISTS alert_rule_versions (
    rule_id    uuid NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    org_id     uuid,
    version    integer NOT NULL,
    content    jsonb NOT NULL,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

-- Since when a rule's condition has held without a break (NULL: it does not hold). Kept here, not in
-- the evaluator's memory, so another control instance taking over keeps counting a rule's duration.
CREATE TABLE IF NOT EXISTS alert_rule_state (
    rule_id       uuid PRIMARY KEY REFERENCES alert_rules(id) ON DELETE CASCADE,
    pending_since timestamptz,
    last_value    double precision,
    evaluated_at  timestamptz
);

-- History: one row per alert, from firing to resolved. Kept when its rule is deleted.
CREATE TABLE IF NOT EXISTS alerts (
    id           uuid PRIMARY KEY,
    rule_id      uuid NOT NULL,
    rule_name    text NOT NULL,
    rule_version integer NOT NULL,
    org_id       uuid REFERENCES organisations(id) ON DELETE CASCADE,  -- NULL: a global rule's
    api_id       text,
    metric       text NOT NULL,
    comparison   text NOT NULL,
    threshold    double precision NOT NULL,
    value        double precision,
    state        text NOT NULL CHECK (state IN ('firing', 'resolved')),
    started_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    acked_at     timestamptz,
    acked_by     text,
    escalated_at timestamptz
);
-- At most one firing alert per rule, whatever evaluators run: the second insert fails.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing ON alerts (rule_id) WHERE state = 'firing';
CREATE INDEX IF NOT EXISTS alerts_org_started ON alerts (org_id, started_at DESC, id DESC);

-- What each alert owes: one row per event (fired, resolved, escalated, acknowledged) and channel
-- (the alerts topic, a webhook, an e-mail address), with the payload fixed when the event happened.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id             uuid PRIMARY KEY,
    alert_id       uuid NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    event          text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('topic', 'webhook', 'email')),
    target         text NOT NULL DEFAULT '',
    payload        jsonb NOT NULL,
    secret_sealed  text,  -- a webhook's signing secret, sealed for its rule (core/sealing.py)
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    done_at        timestamptz
);
CREATE INDEX IF NOT EXISTS alert_notifications_alert ON alert_notifications (alert_id, created_at);
CREATE INDEX IF NOT EXISTS alert_notifications_pending ON alert_notifications (created_at) WHERE status = 'pending';
