-- Running dispatchers. Each holds the session advisory lock (outbox.DISPATCHER_LOCKS,
-- hashtext(worker)) on one connection for as long as it runs, and registers here after taking
-- it: a registered dispatcher whose lock is free has died (or lost its connection), so its
-- leased deliveries are made due at once instead of waiting for their lease to end.
-- An identity is never reused (a dispatcher that lost its lock takes a new one).
CREATE TABLE dispatchers (
    worker      text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
