-- Four-eyes: staff requests held until a second operator approves them (alertd.approvals).
-- An `issue` names the id its order will have (answered in the 202); an `amend` names the
-- order it changes and the version it was asked on. `body` is the request as sent (applied,
-- validated again, on approval); level to by_area are what its preview showed. Decided rows
-- stay: the history of who asked, who decided, when and why.
CREATE TABLE order_approvals (
    id              bigserial PRIMARY KEY,
    order_id        uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('issue', 'amend')),
    body            jsonb NOT NULL,
    base_version    integer,
    requested_by    uuid NOT NULL,
    requested_label text NOT NULL DEFAULT '',
    requested_at    timestamptz NOT NULL DEFAULT now(),
    level           integer NOT NULL,
    hazard          text NOT NULL,
    area            jsonb NOT NULL,
    headline        jsonb NOT NULL,
    expires_at      timestamptz NOT NULL,
    devices         integer NOT NULL,
    by_area         jsonb NOT NULL DEFAULT '{}',
    reasons         text[] NOT NULL,
    decision        text CHECK (decision IN ('approved', 'rejected')),
    decided_by      uuid,
    decided_label   text,
    decided_at      timestamptz,
    reason          text,
    CHECK ((decision IS NULL) = (decided_at IS NULL))
);
-- At most one request of an order waits at a time (a second one is a 409).
CREATE UNIQUE INDEX order_approvals_one_waiting ON order_approvals (order_id)
    WHERE decision IS NULL;
CREATE INDEX order_approvals_order ON order_approvals (order_id, id);
