-- JMA warning episodes (alertd.ingest.headsup): one warning kind in force in one municipal area
-- for one hazard, from its issue until a report no longer has it in force (解除, なし, 取消);
-- a re-issue opens a new one. Drill reports (訓練) keep episodes of their own (exercise).
CREATE TABLE warning_episodes (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    area_code        text NOT NULL,
    area_name        text NOT NULL,
    warning_type     text NOT NULL,
    kind_code        text NOT NULL,
    kind_name        text NOT NULL,
    hazard           text NOT NULL,
    level            smallint NOT NULL,
    exercise         boolean NOT NULL DEFAULT false,
    started_report   timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE UNIQUE INDEX warning_episodes_open
    ON warning_episodes (exercise, warning_type, area_code, kind_code, hazard)
    WHERE ended_at IS NULL;

-- The devices told of an episode (a heads-up may speak for several episodes at once): none is
-- told twice of one episode. Erased with the device.
CREATE TABLE warning_notices (
    episode_id  bigint NOT NULL REFERENCES warning_episodes (id) ON DELETE CASCADE,
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    told_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (episode_id, device_id)
);
CREATE INDEX warning_notices_device ON warning_notices (device_id);
