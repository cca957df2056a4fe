-- Staff tokens may expire, and record when they were last used (written at most once a
-- minute per token, so authentication stays a read almost always).
ALTER TABLE staff_tokens
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;
