-- Weekly tips: each device's rotation through the catalogue, and the time zone its quiet hours
-- are in (NULL: tips.time_zone, Asia/Tokyo by default).
ALTER TABLE devices ADD COLUMN time_zone text;

-- One row per device that was ever offered a tip. `seen` holds the tips sent in the current
-- rotation (none repeats until every fitting tip was sent; then `round` rises and `seen`
-- starts again). `last_week` is the week (its Monday, Asia/Tokyo) the weekly send last handled
-- the device, tip or no tip (tips off, an active order): a second run that week, on this node
-- or another, passes it by.
CREATE TABLE tip_rotation (
    device_id  uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    round      integer NOT NULL DEFAULT 1,
    seen       text[] NOT NULL DEFAULT '{}',
    last_week  date,
    last_tip   text,
    last_at    timestamptz
);

-- Outbox claims take priority-10 pushes (orders, liftings, openings, warnings) before
-- priority-5 ones (tips), each in due order: the index leads with the priority so that each
-- half of the claim is one bounded range scan, however many tips wait.
CREATE INDEX deliveries_due_by_priority ON deliveries (service, priority, due_at)
    WHERE state IN ('pending', 'sending');
DROP INDEX deliveries_due;
ALTER INDEX deliveries_due_by_priority RENAME TO deliveries_due;
-- The claim knows these two priorities only (push.PRIORITIES): any other would never be sent.
ALTER TABLE deliveries ADD CONSTRAINT deliveries_priority CHECK (priority IN (5, 10));
