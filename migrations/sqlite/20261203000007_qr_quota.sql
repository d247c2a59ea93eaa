-- The per-client cap on new QR codes counts by `client_key`: the address, or its /64 for IPv6
-- (`client_ip` keeps the full address for the login history and the WeChat reply). Codes
-- still being made at WeChat are counted too, in the server, under the same lock as this
-- count, so parallel first visits can't all pass a count made before any of them was stored.
ALTER TABLE login_scenes ADD COLUMN client_key TEXT;
CREATE INDEX login_scenes_client_key ON login_scenes (client_key, created_at);
-- Nothing looks scenes up by the full address any more.
DROP INDEX login_scenes_client_ip;
