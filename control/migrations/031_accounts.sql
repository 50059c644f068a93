-- Management accounts: disabling a user, revoking a user's earlier tokens, and one e-mail in several
-- organisations (an org admin creating a user must not learn that the e-mail has an account elsewhere).

ALTER TABLE users ADD COLUMN IF NOT EXISTS enabled boolean NOT NULL DEFAULT true;
-- Tokens issued before this instant are refused (a password change, a reset); NULL: none revoked.
ALTER TABLE users ADD COLUMN IF NOT EXISTS tokens_not_before timestamptz;

-- An e-mail is unique inside an organisation, and among global admins (org_id NULL), not across them.
DROP INDEX IF EXISTS users_email_key;
CREATE UNIQUE INDEX IF NOT EXISTS users_org_email_key
    ON users (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(email));
CREATE INDEX IF NOT EXISTS users_email_idx ON users (lower(email));
