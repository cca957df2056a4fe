-- Every place of every live My Evacuation Sheet is a matchable point, like a device's location
-- and its watched places. Slots (alertd.points): 0 the current location, 1-3 watched places,
-- 4-53 sheet places: a live sheet holds a block of 5 slots (4 + 5 * block + place index,
-- block 0-9: at most 10 live sheets of at most 5 places each), kept while the sheet lives.
-- The rows are written here, by a trigger on sheets, in the transaction of the sheet write:
-- the point NOTIFY commits with it, so an order's catch-up sees every sheet written before it,
-- whichever code path wrote the sheet. Erasing a device or a sheet row cascades.
ALTER TABLE device_points DROP CONSTRAINT device_points_slot_check;
ALTER TABLE device_points ADD CONSTRAINT device_points_slot_check CHECK (slot BETWEEN 0 AND 63);
ALTER TABLE device_points ADD COLUMN sheet_id uuid;
ALTER TABLE device_points ADD CONSTRAINT device_points_sheet_slot
    CHECK ((sheet_id IS NOT NULL) = (slot >= 4));
ALTER TABLE device_points ADD CONSTRAINT device_points_sheet_fkey
    FOREIGN KEY (device_id, sheet_id) REFERENCES sheets (device_id, id) ON DELETE CASCADE;

-- Rewrite the sheet's points from its stored body (none once it is a tombstone). Callers hold
-- the device's sheet-write lock (sheets.store takes it; taken again here, it is re-entrant),
-- so two sheets of one device never take the same block.
CREATE FUNCTION alertd_sheet_points_write(dev uuid, sheet uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    block int;
    dev_seq bigint;
    doc jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(1936221541, hashtext(dev::text));  -- sheets.store._LOCK_CLASS
    SELECT (min(slot) - 4) / 5 INTO block FROM device_points
        WHERE device_id = dev AND sheet_id = sheet;
    SELECT body INTO doc FROM sheets WHERE device_id = dev AND id = sheet AND NOT deleted;
    IF doc IS NULL THEN
        DELETE FROM device_points WHERE device_id = dev AND sheet_id = sheet;
        RETURN;
    END IF;
    IF block IS NULL THEN
        SELECT min(b) INTO block FROM generate_series(0, 9) AS b WHERE NOT EXISTS (
            SELECT 1 FROM device_points
            WHERE device_id = dev AND slot BETWEEN 4 + 5 * b AND 8 + 5 * b);
        IF block IS NULL THEN
            RAISE EXCEPTION 'device % has no free sheet-point block (more than 10 live sheets)',
                dev;
        END IF;
    END IF;
    SELECT seq INTO dev_seq FROM devices WHERE id = dev;
    -- Rewritten whole: a NOTIFY repeated in one transaction is sent once, so an unchanged
    -- place costs its follower nothing more than a changed one.
    DELETE FROM device_points WHERE device_id = dev AND sheet_id = sheet;
    INSERT INTO device_points (device_id, device_seq, slot, sheet_id, lon, lat)
    SELECT dev, dev_seq, 4 + 5 * block + (e.i - 1)::int, sheet,
           (e.place ->> 'lon')::double precision, (e.place ->> 'lat')::double precision
    FROM jsonb_array_elements(doc -> 'places') WITH ORDINALITY AS e(place, i)
    WHERE e.i <= 5 AND jsonb_typeof(e.place -> 'lon') = 'number'
      AND jsonb_typeof(e.place -> 'lat') = 'number';
END $$;

CREATE FUNCTION alertd_sheet_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM alertd_sheet_points_write(NEW.device_id, NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER sheets_points_insert AFTER INSERT ON sheets
    FOR EACH ROW EXECUTE FUNCTION alertd_sheet_points();
CREATE TRIGGER sheets_points_update AFTER UPDATE ON sheets
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.deleted <> NEW.deleted)
    EXECUTE FUNCTION alertd_sheet_points();

-- Sheets written before this migration.
SELECT alertd_sheet_points_write(device_id, id) FROM (
    SELECT device_id, id FROM sheets WHERE NOT deleted ORDER BY device_id, change_seq) AS s;
