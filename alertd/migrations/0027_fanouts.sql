-- Streamed fan-out (alertd.fanout). An order reaching more devices than orders.fanout_chunk is
-- accepted with the deliveries of its first chunk, in the same transaction as the order, and
-- with this row: the device seqs it matched beyond that chunk. Once that transaction commits
-- the first pushes go out, while a fan-out runner writes the rest a chunk per transaction
-- (advancing `done` in the same transaction, so each device gets its row once). A runner holds
-- the row by its lease; a runner that dies leaves it to another once the lease has passed.
-- The recipients are the ones matched at acceptance, as when everything was one transaction.
CREATE TABLE fanouts (
    order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    seqs        bigint[] NOT NULL,
    done        integer NOT NULL DEFAULT 0 CHECK (done >= 0),
    owner       text,
    lease_until timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
);
