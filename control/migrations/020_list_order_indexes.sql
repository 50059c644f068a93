-- Paginated lists walk an organisation's APIs and connectors in (created_at, id) order:
-- with these, each page is an index range scan instead of a sort of the organisation's rows.
CREATE INDEX IF NOT EXISTS apis_org_created_id ON apis (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS connectors_org_created_id ON connectors (org_id, created_at, id);
