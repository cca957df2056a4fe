-- The claim takes due rows ORDER BY due_at, id, but deliveries_due ended at due_at: every
-- delivery of a fan-out shares its due_at (the transaction's time), so each claim of 50 read
-- and sorted every due row of its service (a bitmap scan and a sort of 10,000 rows to take 50
-- in a 20,000-device fan-out: most of PostgreSQL's CPU per delivery). With id in the key the
-- index gives the claim's order itself and the LIMIT stops the scan. Same rows, same count of
-- index insertions per update; it replaces the old index.
CREATE INDEX deliveries_due_in_order ON deliveries (service, priority, due_at, id)
    WHERE state IN ('pending', 'sending');
DROP INDEX deliveries_due;
ALTER INDEX deliveries_due_in_order RENAME TO deliveries_due;
