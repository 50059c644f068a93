-- Per organisation: caller policies for all of its APIs (docs/auth.md, docs/cors.md). ``ip_restriction`` applies
-- to every API besides the API's own; ``cors`` is the policy of the APIs that have none of their own.
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS ip_restriction jsonb;
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS cors jsonb;
