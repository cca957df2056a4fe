-- The alert spine: devices, their points, staff tokens, orders and the delivery outbox.

CREATE TABLE devices (
    id            uuid PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    platform      text NOT NULL CHECK (platform IN ('ios', 'android')),
    push_token    text NOT NULL,
    token_state   text NOT NULL DEFAULT 'active' CHECK (token_state IN ('active', 'invalid')),
    secret_hash   bytea NOT NULL UNIQUE,
    locale        text NOT NULL DEFAULT 'ja',
    tips          boolean NOT NULL DEFAULT true,
    quiet_start   time,
    quiet_end     time,
    drill         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per matchable point: slot 0 is the current location, slots 1-3 watched places.
-- A watched municipality has no point (lon/lat NULL) but an area_code.
CREATE TABLE device_points (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    device_seq  bigint NOT NULL,
    slot        smallint NOT NULL CHECK (slot BETWEEN 0 AND 3),
    place_id    text,
    label       text,
    lon         double precision,
    lat         double precision,
    accuracy_m  real,
    area_code   text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, slot),
    UNIQUE (device_id, place_id),
    CHECK ((lon IS NULL) = (lat IS NULL)),
    CHECK ((lon IS NOT NULL) OR (area_code IS NOT NULL))
);

-- Tell every node's point index about a change; the payload carries no coordinates.
CREATE FUNCTION alertd_points_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('alertd_points', OLD.device_seq::text || ',' || OLD.slot::text);
    ELSE
        PERFORM pg_notify('alertd_points', NEW.device_seq::text || ',' || NEW.slot::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER device_points_notify AFTER INSERT OR UPDATE OR DELETE ON device_points
    FOR EACH ROW EXECUTE FUNCTION alertd_points_notify();

CREATE TABLE staff_tokens (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    source          text NOT NULL DEFAULT 'staff',
    source_key      text UNIQUE,
    version         integer NOT NULL DEFAULT 1,
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'lifted')),
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    lifted_at       timestamptz
);

CREATE TABLE order_versions (
    order_id     uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    level        smallint NOT NULL CHECK (level IN (3, 4, 5)),
    hazard       text NOT NULL,
    area_kind    text NOT NULL,
    area         jsonb NOT NULL,
    area_codes   text[] NOT NULL DEFAULT '{}',
    headline     jsonb NOT NULL,
    instruction  jsonb NOT NULL DEFAULT '{}',
    expires_at   timestamptz NOT NULL,
    matched      integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
);

CREATE TABLE idempotency_keys (
    staff_id     uuid NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, key)
);

-- The durable outbox. A row is due when state is pending/sending and due_at has passed:
-- for pending rows due_at is the next attempt, for sending rows it is the lease's end,
-- so a crashed dispatcher's rows become claimable again by the same query.
CREATE TABLE deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    apns_id      uuid NOT NULL,
    order_id     uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    service      text NOT NULL CHECK (service IN ('apns', 'fcm')),
    level        smallint,
    title        text NOT NULL,
    body         text NOT NULL,
    priority     smallint NOT NULL DEFAULT 10,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'sending', 'sent', 'invalid_token', 'failed', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    claimed_by   text,
    provider_id  text,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    UNIQUE (order_id, version, device_id, kind)
);

CREATE INDEX deliveries_due ON deliveries (service, due_at) WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_order ON deliveries (order_id, state);
CREATE INDEX deliveries_device ON deliveries (device_id, created_at DESC);
