-- SMS abuse limits: who asked for each code, so codes per client IP can be counted.
-- Codes per phone per hour/day use the existing sms_codes_phone (phone, created_at) index;
-- the resend check uses it and sms_codes_scene (scene, created_at).
ALTER TABLE sms_codes ADD COLUMN client_ip TEXT;
CREATE INDEX sms_codes_client_ip ON sms_codes (client_ip, created_at);
