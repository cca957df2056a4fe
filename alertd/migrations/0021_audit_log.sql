-- The audit trail: every staff action through the API or the console (and token changes
-- from the CLI), who did it, from where, what it answered, and the state before and after.
-- Refused attempts are kept too (a viewer's 403, a 422), so the trail shows who tried what.
-- staff_id is not a foreign key: an entry outlives the token it names.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    staff_id    uuid,
    staff_label text NOT NULL DEFAULT '',
    staff_role  text NOT NULL DEFAULT '',
    via         text NOT NULL CHECK (via IN ('api', 'console', 'cli')),
    remote      text NOT NULL DEFAULT '',
    action      text NOT NULL,
    target      text,
    status      integer NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_target ON audit_log (target, id) WHERE target IS NOT NULL;
CREATE INDEX audit_log_staff ON audit_log (staff_id, id) WHERE staff_id IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no role may change or remove an entry, the table's owner and a superuser
-- included (privileges do not bind them; a trigger does). Only dropping the triggers, which
-- is itself a schema change, would allow it.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
