-- The scheduler and housekeeping (alertd.scheduler, alertd.housekeeping).

-- The last run of each scheduled job: `slot` is the scheduled time it ran for. A job is due
-- when its latest scheduled time is later than `slot`; the row is written only after a run
-- succeeded, so a run cut short (a crash) is made again, and a week missed while every node
-- was down is run once when one comes back, whichever node that is.
CREATE TABLE scheduled_jobs (
    name         text PRIMARY KEY,
    slot         timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    node         text NOT NULL,
    runs         bigint NOT NULL DEFAULT 1,
    result       jsonb NOT NULL DEFAULT '{}'
);

-- An order past its expiry is `expired` (housekeeping), no longer `active`.
ALTER TABLE orders DROP CONSTRAINT orders_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_state_check
    CHECK (state IN ('active', 'lifted', 'expired'));
ALTER TABLE orders ADD COLUMN expired_at timestamptz;

-- When a device last used its credentials (written at most once a day per device, by the
-- authenticating query itself); devices unseen for housekeeping.device_max_idle_s are erased.
-- The default gives devices registered before this migration a fresh start.
ALTER TABLE devices ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX devices_last_seen ON devices (last_seen_at);
