-- Idempotency keys of devices (sheet writes) beside those of staff tokens: a key belongs to a
-- staff token (staff_id) or to a device (device_id, erased with it), never both; keys are
-- unique per owner.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ALTER COLUMN staff_id DROP NOT NULL;
ALTER TABLE idempotency_keys ADD COLUMN device_id uuid REFERENCES devices (id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_one_owner
    CHECK ((staff_id IS NULL) <> (device_id IS NULL));
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_staff_key UNIQUE (staff_id, key);
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_device_key UNIQUE (device_id, key);
