-- deliveries_order (order_id, state) repeats the leading column of the unique key
-- (order_id, version, device_id, kind), which serves every per-order query; each extra index
-- costs a write on every outbox update, and the fan-out updates each row twice.
DROP INDEX IF EXISTS deliveries_order;

-- The point follower looks points up by (device_seq, slot) for every batch of changes.
CREATE UNIQUE INDEX IF NOT EXISTS device_points_seq_slot ON device_points (device_seq, slot);
