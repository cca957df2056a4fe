-- Entries of a feed index that carry nothing to take (neither a link nor inline CAP): counted
-- per feed, once each, so that the feed's health shows them (GET /v1/staff/feeds, /metrics).
ALTER TABLE feed_state ADD COLUMN items_skipped bigint NOT NULL DEFAULT 0;
