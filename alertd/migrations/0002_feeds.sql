-- Feeds: CAP messages and their references, quarantine, pollers' health, JMA warning states,
-- shelters and their states; deliveries that belong to a shelter opening rather than an order.

ALTER TABLE orders ADD COLUMN exercise boolean NOT NULL DEFAULT false;

-- Every CAP message accepted (or recorded), by its key; re-delivery is a no-op.
CREATE TABLE cap_messages (
    sender       text NOT NULL,
    identifier   text NOT NULL,
    sent         timestamptz NOT NULL,
    status       text NOT NULL,
    msg_type     text NOT NULL,
    source       text NOT NULL,
    order_id     uuid REFERENCES orders (id) ON DELETE SET NULL,
    outcome      text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender, identifier)
);

-- Updates and cancels whose referenced message has not arrived yet, kept to apply later.
CREATE TABLE cap_waiting (
    ref_sender      text NOT NULL,
    ref_identifier  text NOT NULL,
    sender          text NOT NULL,
    identifier      text NOT NULL,
    source          text NOT NULL,
    raw             bytea NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ref_sender, ref_identifier, sender, identifier)
);

CREATE TABLE quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,
    reason       text NOT NULL,
    raw          bytea NOT NULL,
    raw_size     integer NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feed_state (
    name           text PRIMARY KEY,
    kind           text NOT NULL,
    url            text NOT NULL,
    etag           text,
    last_modified  text,
    last_success   timestamptz,
    last_error     text,
    last_error_at  timestamptz,
    failures       integer NOT NULL DEFAULT 0,
    items_seen     bigint NOT NULL DEFAULT 0,
    next_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feed_entries_seen (
    feed      text NOT NULL,
    entry_id  text NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feed, entry_id)
);

-- JMA warning state per area and warning kind (a report restates the whole prefecture).
CREATE TABLE area_warnings (
    area_code         text NOT NULL,
    kind_code         text NOT NULL,
    kind_name         text NOT NULL,
    status            text NOT NULL,
    level_equivalent  smallint,
    area_name         text NOT NULL,
    warning_type      text NOT NULL,
    event_id          text,
    report_datetime   timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (area_code, kind_code)
);

CREATE TABLE shelters (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    address            text NOT NULL DEFAULT '',
    lat                double precision NOT NULL,
    lon                double precision NOT NULL,
    hazards            text[] NOT NULL DEFAULT '{}',
    capacity           integer,
    municipality_code  text,
    kind               text NOT NULL,
    source_format      text NOT NULL,
    status             text NOT NULL DEFAULT 'not_open'
                       CHECK (status IN ('not_open', 'open', 'full', 'closed')),
    crowding           text CHECK (crowding IN ('low', 'medium', 'high', 'full')),
    evacuees           integer CHECK (evacuees >= 0),
    status_source      text,
    status_at          timestamptz,
    openings           integer NOT NULL DEFAULT 0,
    imported_at        timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Shelter-opening pushes have no order of their own: `ref` names the opening instead,
-- and one device gets one push per opening.
ALTER TABLE deliveries ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN ref text;
ALTER TABLE deliveries ADD COLUMN alert_id text;
CREATE UNIQUE INDEX deliveries_ref ON deliveries (ref, device_id) WHERE ref IS NOT NULL;
