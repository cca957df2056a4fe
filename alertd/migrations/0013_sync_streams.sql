-- Sync of a device's inbox and shelters (alertd.sync): change positions that survive restarts
-- and agree across nodes.
--
-- deliveries.id order is not commit order (fan-outs from many writers commit in any order), so
-- a cursor over ids could step past a row that commits late. Instead every row carries the id
-- of the transaction that last changed it as the inbox sees it (change_xid: created, read,
-- cancelled), and sync serves only rows whose change_xid is below the xmin of its own snapshot:
-- every transaction below that horizon has ended, and every transaction that has not ended, or
-- has not started, has an xid at or above it. So once a sync has served a position, no row can
-- appear behind it later; the order (change_xid, id) is final below the horizon.
-- `xid` is the transaction that created the row: a cancelled row is reported as a tombstone
-- only to a phone whose cursor is past where it was created (one that may have seen it).
-- The cost to a fan-out is two column defaults and one index, which replaces deliveries_device
-- (the inbox list was its only reader).
ALTER TABLE deliveries
    ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN read_at timestamptz;

DROP INDEX IF EXISTS deliveries_device;
CREATE INDEX deliveries_inbox ON deliveries (device_id, change_xid, id);

CREATE FUNCTION alertd_restamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

-- A change the inbox shows is a change sync reports: read, or cancelled (gone from the inbox).
-- Other state changes (sending, sent, failed) do not touch the row's position.
CREATE TRIGGER deliveries_inbox_change BEFORE UPDATE OF state, read_at ON deliveries
    FOR EACH ROW
    WHEN ((NEW.state = 'cancelled') IS DISTINCT FROM (OLD.state = 'cancelled')
          OR NEW.read_at IS DISTINCT FROM OLD.read_at)
    EXECUTE FUNCTION alertd_restamp();

-- Shelters: the same change position, moved by any change a phone shows (status, crowding,
-- evacuees, and the imported facts), not by a report that only restates them. `seq` is the
-- shelter's number in cursors (their positions hold integers only).
ALTER TABLE shelters
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE TRIGGER shelters_change BEFORE UPDATE ON shelters
    FOR EACH ROW
    WHEN ((NEW.name, NEW.address, NEW.lat, NEW.lon, NEW.hazards, NEW.capacity, NEW.status,
           NEW.crowding, NEW.evacuees)
          IS DISTINCT FROM (OLD.name, OLD.address, OLD.lat, OLD.lon, OLD.hazards, OLD.capacity,
                            OLD.status, OLD.crowding, OLD.evacuees))
    EXECUTE FUNCTION alertd_restamp();

-- Shelters near a point: a latitude band first, then the exact distance.
CREATE INDEX shelters_lat ON shelters (lat, lon);
