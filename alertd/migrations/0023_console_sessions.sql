-- Sessions of the staff console (/console): signed in with a staff token, carried by an
-- HttpOnly cookie whose value is stored only as its SHA-256 digest. A session is as good as
-- its token: authentication joins staff_tokens, so revoking or expiring the token ends every
-- session of it at once. Rows past their expiry are refused and cleared at sign-in.
CREATE TABLE console_sessions (
    id              uuid PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    staff_token_id  uuid NOT NULL REFERENCES staff_tokens (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_by_token ON console_sessions (staff_token_id);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
