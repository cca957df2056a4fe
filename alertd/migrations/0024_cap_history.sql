-- The staff console lists the CAP messages received, newest first, a page at a time
-- (alertd.ingest.cap_history): cap_messages is never purged (it is the re-delivery key), so
-- the list walks an index rather than sorting the whole table on every refresh.
CREATE INDEX cap_messages_received ON cap_messages (received_at, sender, identifier);
