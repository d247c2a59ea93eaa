-- The per-IP cap on new QR codes counts reservations, not login_scenes: a slot is taken, in
-- one step with the count, before WeChat is asked for a code, and given back if WeChat fails.
-- Counting scenes left a gap between the count and the insert (the WeChat call), which
-- parallel first visits raced through. `client_key` is the address, or its /64 for IPv6.
CREATE TABLE qr_quota (
    id          INTEGER PRIMARY KEY,
    client_key  TEXT NOT NULL,
    reserved_at INTEGER NOT NULL
);
CREATE INDEX qr_quota_client ON qr_quota (client_key, reserved_at);
