-- A push token belongs to one device: registering it again (the app reinstalled) or setting it
-- with PATCH /v1/me takes it from the device that held it, so one phone never gets an alert
-- twice. At most one device holds a token active per platform (its push service).
-- Tokens are indexed by digest: one may be up to 4096 characters, beyond a btree entry's size.

-- Of the devices sharing an active token today, the one changed last keeps it.
UPDATE devices d SET token_state = 'invalid', updated_at = now()
 WHERE token_state = 'active'
   AND EXISTS (SELECT 1 FROM devices n
                WHERE n.platform = d.platform AND n.push_token = d.push_token
                  AND n.token_state = 'active' AND (n.updated_at, n.seq) > (d.updated_at, d.seq));

CREATE UNIQUE INDEX devices_active_token ON devices (platform, md5(push_token))
    WHERE token_state = 'active';
