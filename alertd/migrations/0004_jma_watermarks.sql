-- The newest JMA report applied per prefecture and warning type: an older report processed
-- later (feeds list the newest first) must not bring back warnings a newer one lifted.
CREATE TABLE jma_watermarks (
    prefecture       text NOT NULL,
    warning_type     text NOT NULL,
    report_datetime  timestamptz NOT NULL,
    PRIMARY KEY (prefecture, warning_type)
);
