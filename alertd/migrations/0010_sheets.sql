-- My Evacuation Sheets (sheets.store): one row per device and sheet id, live or a tombstone
-- (deleted, no body) that sync reports until the device is erased (the rows cascade with it).
-- Every write takes the next number of sync_seq into change_seq. Writes to one device's sheets
-- are serialised (a transaction advisory lock per device, taken before the number), so for one
-- device change_seq order is commit order: a sync cursor past N never misses a later commit
-- numbered below N.
CREATE SEQUENCE sync_seq AS bigint;

CREATE TABLE sheets (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    version     bigint NOT NULL CHECK (version >= 1),
    deleted     boolean NOT NULL DEFAULT false,
    body        jsonb CHECK ((body IS NULL) = deleted),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    change_seq  bigint NOT NULL DEFAULT nextval('sync_seq'),
    PRIMARY KEY (device_id, id)
);
CREATE INDEX sheets_changes ON sheets (device_id, change_seq);
-- Live sheets that name a shelter (body @> {"destinations": [{"shelter_id": …}]}).
CREATE INDEX sheets_body ON sheets USING gin (body jsonb_path_ops) WHERE NOT deleted;

-- Secrets every node shares and keeps across restarts: the sync cursors' HMAC key, drawn once
-- here from gen_random_uuid() (a strong random source; 244 random bits in two).
CREATE TABLE server_secrets (
    name    text PRIMARY KEY,
    secret  bytea NOT NULL CHECK (octet_length(secret) >= 16)
);
INSERT INTO server_secrets (name, secret) VALUES (
    'sync_cursor',
    decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
